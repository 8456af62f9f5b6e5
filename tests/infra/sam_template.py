"""Read template.yaml the way the tests need it: mocked resources are built from the
template (bucket names, function code paths, substitutions), so tests and infrastructure
cannot drift apart. Shared by tests/infra and tests/functions (loaded by path: test
folders are not packages).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
EVENTS = ROOT / "events"
# moto's default account; the region the offline checks and tests use.
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


class _CfnLoader(yaml.SafeLoader):
    """Keeps CloudFormation short-form tags (!Ref, !Sub, !GetAtt...) as their long form."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":  # !GetAtt A.b is short for [A, b]
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    data = yaml.load(path.read_text(), Loader=_CfnLoader)
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


def parameter_defaults(template: dict[str, Any]) -> dict[str, str]:
    return {k: str(v["Default"]) for k, v in template.get("Parameters", {}).items()}


def resolve_sub(template: dict[str, Any], value: Any) -> str:
    """A `!Sub` string (or plain string) with parameters at their defaults and the pseudo
    parameters of the mocked account."""
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    assert isinstance(text, str), f"cannot resolve {value!r}"
    names = {
        **parameter_defaults(template),
        "AWS::AccountId": ACCOUNT_ID,
        "AWS::Region": REGION,
        "AWS::Partition": "aws",
    }

    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        assert key in names, f"${{{key}}} is not a parameter or pseudo parameter"
        return names[key]

    return re.sub(r"\$\{([A-Za-z0-9:]+)\}", sub, text)


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def artefacts_bucket_name(template: dict[str, Any]) -> str:
    bucket = template["Resources"]["ArtefactsBucket"]["Properties"]["BucketName"]
    return resolve_sub(template, bucket)


def dockerfile_cmd(path: Path) -> list[str]:
    """The exec-form CMD of a Dockerfile (the handler of a Lambda image), [] if none."""
    cmd: list[str] = []
    for line in path.read_text().splitlines():
        m = re.match(r"\s*CMD\s+(\[.*\])\s*$", line)
        if m:
            cmd = [str(x) for x in json.loads(m.group(1))]
    return cmd


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    props: dict[str, Any]  # Globals.Function merged under the function's own properties
    layers: list[str]  # logical ids, Globals first
    metadata: dict[str, Any] = field(default_factory=dict)  # the resource's Metadata

    @property
    def is_image(self) -> bool:
        return self.props.get("PackageType", "Zip") == "Image"

    @property
    def dockerfile(self) -> Path:
        assert self.is_image, f"{self.logical_id} is a zip function"
        return ROOT / str(self.metadata["DockerContext"]) / str(self.metadata["Dockerfile"])

    @property
    def handler(self) -> str:
        """`Handler` of a zip function; the Dockerfile's CMD of an image function."""
        if not self.is_image:
            return str(self.props["Handler"])
        cmd = dockerfile_cmd(self.dockerfile)
        assert len(cmd) == 1, f'{self.dockerfile}: CMD must be ["module.function"]'
        return cmd[0]

    @property
    def code_dir(self) -> Path:
        """CodeUri of a zip function; the Dockerfile's folder of an image function (its
        handler module is copied from there into the image)."""
        if self.is_image:
            return self.dockerfile.parent
        return ROOT / str(self.props["CodeUri"])

    @property
    def handler_file(self) -> Path:
        module, _func = self.handler.rsplit(".", 1)
        return self.code_dir / (module.replace(".", "/") + ".py")

    @property
    def handler_name(self) -> str:
        return self.handler.rsplit(".", 1)[1]


def functions(template: dict[str, Any]) -> dict[str, FunctionSpec]:
    glob = template.get("Globals", {}).get("Function", {})
    out: dict[str, FunctionSpec] = {}
    for name, res in resources_of_type(template, "AWS::Serverless::Function").items():
        own = res.get("Properties", {})
        props = {**glob, **own}
        layers = []
        for layer in itertools.chain(glob.get("Layers", []), own.get("Layers", [])):
            is_ref = isinstance(layer, dict) and set(layer) == {"Ref"}
            assert is_ref, f"{name}: layer {layer!r} is not a !Ref to a layer of this template"
            layers.append(str(layer["Ref"]))
        out[name] = FunctionSpec(name, props, layers, res.get("Metadata", {}))
    return out


def script_module(name: str) -> ModuleType:
    """scripts/<name>.py as a module, loaded once (the scripts are not a package)."""
    key = f"algotrendy_script_{name}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    spec.loader.exec_module(module)
    return module


def _invoke_module() -> ModuleType:
    """scripts/invoke.py, whose intrinsic-function resolver (the one `make invoke` uses)
    gives the tests each function's environment as deployed, placeholders for resources."""
    return script_module("invoke")


def function_environment(template: dict[str, Any], logical_id: str) -> dict[str, str]:
    """Globals + the function's own Environment, parameters at their defaults."""
    invoke = _invoke_module()
    resolver = invoke.Resolver(template, region=REGION)
    env: dict[str, str] = invoke.function_environment(template, logical_id, resolver)
    return env


_counter = itertools.count()


def load_handler_module(spec: FunctionSpec) -> ModuleType:
    """The function's handler file as a fresh module (every function's file is app.py)."""
    return load_module_file(spec.handler_file, spec.code_dir.name)


def load_module_file(path: Path, prefix: str) -> ModuleType:
    """Execute `path` as a fresh module with a unique name: module-level state (clients,
    caches) is new, as in a cold start, and files of the same name do not shadow one
    another."""
    name = f"_lambda_{prefix}_{next(_counter)}"
    mod_spec = importlib.util.spec_from_file_location(name, path)
    assert mod_spec is not None
    assert mod_spec.loader is not None
    module = importlib.util.module_from_spec(mod_spec)
    # Registered before it runs, as an imported module is: pydantic resolves the
    # annotations of models defined in it through sys.modules.
    sys.modules[name] = module
    try:
        mod_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@dataclass
class FakeLambdaContext:
    """The attributes Powertools' Logger reads from the Lambda context."""

    function_name: str = "test-function"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:test-function"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"
    function_version: str = "$LATEST"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000
