# Offline checks of the AWS shape: template.yaml, statemachines/*.asl.json, the SAM build.
# Included from the Makefile; needs only python3.11, pip, node/npm and make. No AWS
# credentials are used (they are removed from the environment of every step) and nothing
# is deployed. Tools are pinned and live apart from the app's venv:
#   .venv-sam/   aws-sam-cli (+ cfn-lint); beside the app it would downgrade boto3/pydantic
#   .tools/      asl-validator from the npm registry
#
#   make template-check   validate (SAM + lint), cfn-lint, ASL validation, sam build
#   make template-sizes   per-function code + layers unzipped size from the build, <= 250 MB
#                         (webhook <= 30 MB)
#   make image-trees      assemble each container-image function's file system from its
#                         Dockerfile, without Docker (scripts/image_tree.py)
#   make invoke FN=WebhookFunction EVENT=events/webhook_strategy_json.json [ENV_VARS=f.json]
#                         run a built function's handler on an event, as Lambda would
#                         import it (stand-in for `sam local invoke`, which needs Docker)

SAM_PYTHON     ?= python3.11
SAM_VENV       ?= .venv-sam
SAM_BIN        := $(SAM_VENV)/bin
SAM_CLI_VERSION       ?= 1.170.0
ASL_VALIDATOR_VERSION ?= 4.0.0
TOOLS_DIR      ?= .tools
SAM_BUILD_DIR  ?= .aws-sam/build
ASL_FILES      := $(wildcard statemachines/*.asl.json)
SAM_STAMP      := $(SAM_VENV)/.installed-sam-$(SAM_CLI_VERSION)
ASL_STAMP      := $(TOOLS_DIR)/.installed-asl-validator-$(ASL_VALIDATOR_VERSION)
ASL_VALIDATOR  := $(TOOLS_DIR)/node_modules/.bin/asl-validator

# Offline and credential-free: a fixed region, no profile or keys, no instance metadata.
OFFLINE_AWS := env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN \
	-u AWS_PROFILE -u AWS_DEFAULT_PROFILE AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 \
	AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0

.PHONY: template-check template-validate template-lint asl-check sam-build template-sizes \
	template-tools invoke image-trees

$(SAM_STAMP):
	test -x $(SAM_BIN)/python || $(SAM_PYTHON) -m venv $(SAM_VENV)
	$(SAM_BIN)/python -m pip install --quiet --upgrade pip
	$(SAM_BIN)/python -m pip install --quiet 'aws-sam-cli==$(SAM_CLI_VERSION)'
	rm -f $(SAM_VENV)/.installed-sam-*
	touch $@

$(ASL_STAMP):
	mkdir -p $(TOOLS_DIR)
	npm install --prefix $(TOOLS_DIR) --no-audit --no-fund --silent \
		'asl-validator@$(ASL_VALIDATOR_VERSION)'
	rm -f $(TOOLS_DIR)/.installed-asl-validator-*
	touch $@

template-tools: $(SAM_STAMP) $(ASL_STAMP)

## SAM's own transform check, then the same with cfn-lint's rules.
template-validate: $(SAM_STAMP)
	$(OFFLINE_AWS) $(SAM_BIN)/sam validate --template-file template.yaml --lint
	$(OFFLINE_AWS) $(SAM_BIN)/sam validate --template-file template.yaml

## cfn-lint on its own: every rule, warnings fail too.
template-lint: $(SAM_STAMP)
	$(OFFLINE_AWS) $(SAM_BIN)/cfn-lint template.yaml

## Amazon States Language: schema, state references, JSONPath, Resource ARNs.
## asl-validator comes from the npm registry. Without npm on the machine the step is
## skipped with a notice, so `make test` needs only Python, pip and make; in CI (CI=true,
## where .ci/run installs npm) a missing npm is an error.
asl-check:
	@test -n "$(ASL_FILES)" || { echo "no statemachines/*.asl.json"; exit 1; }
	@if command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory $(ASL_STAMP) && \
		$(ASL_VALIDATOR) $(foreach f,$(ASL_FILES),--json-path $(f)); \
	elif [ "$$CI" = "true" ]; then \
		echo "asl-check: npm not found (CI must validate the state machines)"; exit 1; \
	else \
		echo "asl-check: SKIPPED, npm not found (install Node.js/npm to validate the ASL)"; \
	fi

## Build every zip function and layer (layers: layers/pip-layer.mk installs wheels for the
## Lambda platform, CPython 3.11 on Amazon Linux 2), then check the build's layout.
## Container-image functions (PackageType: Image, e.g. BacktestWorkerFunction) are
## excluded: building them needs Docker, which these checks do not have; `image-trees`
## below assembles their file systems from their Dockerfiles instead.
IMAGE_FUNCTIONS = $(shell $(SAM_BIN)/python scripts/check_sam_build.py image-functions)
sam-build: $(SAM_STAMP)
	$(OFFLINE_AWS) LAYER_PYTHON=$(abspath $(SAM_BIN)/python) $(SAM_BIN)/sam build \
		--template-file template.yaml --build-dir $(SAM_BUILD_DIR) --cached --parallel \
		$(foreach f,$(IMAGE_FUNCTIONS),--exclude $(f))
	$(SAM_BIN)/python scripts/check_sam_build.py compile --build-dir $(SAM_BUILD_DIR)
	$(SAM_BIN)/python scripts/check_sam_build.py layout --build-dir $(SAM_BUILD_DIR)

## The image functions' file systems, replayed from their Dockerfiles (pip installs the
## Lambda platform's wheels; the RUN steps run, the numba precompile included) into
## .aws-sam/image/<LogicalId>: what `make invoke` and the cold-import bench run them from.
IMAGE_TREE_DIR ?= .aws-sam/image
image-trees: $(SAM_STAMP)
	$(OFFLINE_AWS) $(SAM_BIN)/python scripts/image_tree.py $(IMAGE_FUNCTIONS) --out $(IMAGE_TREE_DIR)

template-check: template-validate template-lint asl-check sam-build image-trees

## Deployment size per function (code + all its layers, unzipped) against Lambda's limit.
template-sizes: sam-build
	$(SAM_BIN)/python scripts/check_sam_build.py sizes --build-dir $(SAM_BUILD_DIR)

## Run one built function's handler locally on an event file (scripts/invoke.py says what
## it isolates and what it does not, compared with `sam local invoke`).
FN ?=
EVENT ?=
ENV_VARS ?=
invoke: sam-build image-trees
	@test -n "$(FN)" || { echo "usage: make invoke FN=<LogicalId> EVENT=<event.json> [ENV_VARS=<env.json>]"; exit 2; }
	@test -n "$(EVENT)" || { echo "usage: make invoke FN=<LogicalId> EVENT=<event.json> [ENV_VARS=<env.json>]"; exit 2; }
	$(OFFLINE_AWS) $(SAM_BIN)/python scripts/invoke.py $(FN) --event $(EVENT) \
		--build-dir $(SAM_BUILD_DIR) $(if $(ENV_VARS),--env-vars $(ENV_VARS))
