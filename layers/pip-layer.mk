# Shared recipe of the dependency layers (each layers/<name>/Makefile includes it; `sam
# build` runs `make build-<LayerLogicalId>` for a layer with `BuildMethod: makefile`,
# with ARTIFACTS_DIR set to the layer's build output).
#
# Why not `BuildMethod: python3.11`: that resolves each requirements file on its own, so a
# dependency shared by two layers (pydantic, typing-extensions...) lands in both, and
# layers are unpacked into one /opt, the later overwriting the earlier file by file; and
# it installs botocore (pulled by aws-xray-sdk) over the runtime's copy. Here each layer
# installs exactly its pinned list with --no-deps; tests/infra checks every list is a
# complete closure for the functions using it.
#
# Wheels only, for the Lambda platform whatever the build host: CPython 3.11 on x86_64
# Amazon Linux 2, glibc 2.26, so manylinux_2_26 and older (manylinux2014 = 2_17) and
# pure-Python wheels; a manylinux_2_28 wheel (numpy >= 2.3, pandas >= 3) is refused.
# Bytecode is compiled at build time: /opt is read-only in Lambda, so a layer without .pyc
# files recompiles every module on each cold start.
LAYER_PYTHON ?= python3.11
LAYER_PIP_FLAGS := --disable-pip-version-check --no-input --no-deps --only-binary=:all: \
	--platform manylinux_2_26_x86_64 --platform manylinux2014_x86_64 \
	--implementation cp --python-version 3.11 --abi cp311

# $(1): the requirements file; $(2): the layer's site directory.
define pip_layer
	$(LAYER_PYTHON) -m pip install --quiet $(LAYER_PIP_FLAGS) --target "$(2)" -r "$(1)"
endef
