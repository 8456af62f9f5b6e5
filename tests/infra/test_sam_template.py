"""template.yaml and statemachines/: what `sam validate`, cfn-lint and asl-validator cannot
see (they check syntax and schema; these check that the template matches the code on disk
and the project's rules)."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import sam_template as sam
from packaging.requirements import Requirement

import algotrendy.errors

TEMPLATE = sam.load_template()
FUNCTIONS = sam.functions(TEMPLATE)
LAYERS = sam.resources_of_type(TEMPLATE, "AWS::Serverless::LayerVersion")
STATE_MACHINES = sam.resources_of_type(TEMPLATE, "AWS::Serverless::StateMachine")
# What the python3.11 Lambda runtime itself provides beside the standard library.
RUNTIME_MODULES = frozenset(
    {"awslambdaric", "boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3"}
)


def test_template_declares_functions_layers_and_a_state_machine() -> None:
    assert TEMPLATE["Transform"] == "AWS::Serverless-2016-10-31"
    assert set(FUNCTIONS) >= {
        "BacktestPlanFunction",
        "BacktestWorkerFunction",
        "BacktestAggregateFunction",
    }
    assert "CoreLayer" in LAYERS
    assert "BacktestStateMachine" in STATE_MACHINES


ZIP_FUNCTIONS = sorted(n for n, f in FUNCTIONS.items() if not f.is_image)
IMAGE_FUNCTIONS = sorted(n for n, f in FUNCTIONS.items() if f.is_image)


@pytest.mark.parametrize("name", ZIP_FUNCTIONS)
def test_zip_function_runtime_is_python311_on_x86_64(name: str) -> None:
    props = FUNCTIONS[name].props
    assert props.get("Runtime") == "python3.11"
    assert props.get("Architectures") == ["x86_64"]
    assert props.get("PackageType", "Zip") == "Zip"


@pytest.mark.parametrize("name", IMAGE_FUNCTIONS)
def test_image_function_builds_from_the_python311_base_image(name: str) -> None:
    """The image's interpreter must be the one the zip functions run (python3.11 on
    Amazon Linux 2), its CMD the handler, and it must install numba (why it is an image)."""
    spec = FUNCTIONS[name]
    assert spec.props.get("Architectures") == ["x86_64"]
    for key in ("Runtime", "Handler", "Layers", "CodeUri"):
        assert key not in spec.props, f"{name}: {key} is not allowed on an image function"
    assert spec.metadata.get("DockerContext") == ".", "context: the repository root"
    assert spec.dockerfile.is_file(), f"{name}: {spec.dockerfile} missing"
    text = spec.dockerfile.read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms == ["public.ecr.aws/lambda/python:3.11"]
    assert spec.handler == "app.handler"
    assert re.search(r"^COPY\s+functions/backtest_worker/app.py\s", text, re.M)
    assert re.search(r"^COPY\s+shared/algotrendy\s", text, re.M)
    assert re.search(r"\bnumba==\d", text), "the worker image must install numba"
    assert "NUMBA_CACHE_DIR=/tmp/" in text, "numba can only cache under /tmp in Lambda"
    # The image is read-only in Lambda: without bytecode built into it, the core would be
    # compiled from source at every cold start (as `check_sam_build.py compile` prevents
    # for the zip functions).
    compiles = re.search(r"^RUN\s+python -m compileall\b(.*)$", text, re.M)
    assert compiles, f"{name}: the image must compile the core to bytecode"
    assert "${LAMBDA_TASK_ROOT}/algotrendy" in compiles.group(1)
    assert "${LAMBDA_TASK_ROOT}/app.py" in compiles.group(1)
    assert text.index("COPY shared/algotrendy") < compiles.start(), "compile after copying"
    for req in re.findall(r"^COPY\s+(layers/\S+/requirements.txt)\s", text, re.M):
        assert (sam.ROOT / req).is_file(), req


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_code_uri_and_handler_exist_and_import(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = FUNCTIONS[name]
    assert spec.code_dir.is_dir(), f"{name}: CodeUri {spec.code_dir} missing"
    assert spec.code_dir.parent == sam.ROOT / "functions", "handlers live in functions/<name>/"
    assert spec.handler_file.is_file(), f"{name}: Handler file {spec.handler_file} missing"
    monkeypatch.setenv("AWS_DEFAULT_REGION", sam.REGION)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    module = sam.load_handler_module(spec)
    handler = getattr(module, spec.handler_name, None)
    assert callable(handler), f"{name}: {spec.props['Handler']} is not a function"
    assert len(inspect.signature(handler).parameters) == 2  # (event, context)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_functions_never_import_each_other(name: str) -> None:
    source = FUNCTIONS[name].handler_file.read_text()
    others = [s.code_dir.name for s in FUNCTIONS.values() if s.logical_id != name]
    for other in others:
        assert not re.search(rf"^\s*(from|import)\s+(functions\.)?{other}\b", source, re.M), (
            f"{name} imports {other}"
        )


# ------------------------------------------------------------------------------ layers


def _layer_dirs() -> dict[str, Path]:
    return {name: sam.ROOT / str(res["Properties"]["ContentUri"]) for name, res in LAYERS.items()}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_builds_for_python311(name: str) -> None:
    """CoreLayer is built by SAM's python3.11 builder (it has no requirements); the
    dependency layers by their Makefile's build-<LogicalId> target (layers/pip-layer.mk)."""
    res = LAYERS[name]
    assert res["Properties"].get("CompatibleRuntimes") == ["python3.11"]
    assert res["Properties"].get("CompatibleArchitectures") == ["x86_64"]
    assert _layer_dirs()[name].is_dir()
    method = res.get("Metadata", {}).get("BuildMethod")
    if name == "CoreLayer":
        assert method == "python3.11"
        return
    assert method == "makefile"
    makefile = (_layer_dirs()[name] / "Makefile").read_text()
    assert re.search(rf"^build-{name}:", makefile, re.M), f"{name}: no build-{name} target"
    assert "pip_layer" in makefile


def test_core_layer_is_the_package_source() -> None:
    """ContentUri shared/ + BuildMethod python3.11 puts the package at python/algotrendy
    (DESIGN.md section 7); `make template-check` verifies the built layout too."""
    assert LAYERS["CoreLayer"]["Properties"]["ContentUri"] == "shared/"
    assert (sam.ROOT / "shared" / "algotrendy" / "__init__.py").is_file()
    # No requirements file there: third-party code belongs in the layers under layers/.
    assert not (sam.ROOT / "shared" / "requirements.txt").exists()


def _requirements(layer: str) -> list[Requirement]:
    path = _layer_dirs()[layer] / "requirements.txt"
    lines = (ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines())
    return [Requirement(ln) for ln in lines if ln]


THIRD_PARTY_LAYERS = sorted(n for n in LAYERS if n != "CoreLayer")


@pytest.mark.parametrize("name", THIRD_PARTY_LAYERS)
def test_dependency_layers_live_under_layers_and_are_pinned(name: str) -> None:
    directory = _layer_dirs()[name]
    assert directory.parent == sam.ROOT / "layers", f"{name}: {directory} not under layers/"
    reqs = _requirements(name)
    assert reqs, f"{name}: empty requirements.txt"
    for req in reqs:
        pins = [s for s in req.specifier if s.operator == "=="]
        assert pins, f"{name}: {req} is not pinned with == (builds must be reproducible)"


def test_every_layer_is_used_and_every_used_layer_exists() -> None:
    used = {layer for spec in FUNCTIONS.values() for layer in spec.layers}
    assert used <= set(LAYERS), f"unknown layers: {used - set(LAYERS)}"
    assert set(LAYERS) <= used, f"layers no function attaches: {set(LAYERS) - used}"
    for spec in FUNCTIONS.values():
        assert len(spec.layers) == len(set(spec.layers)), f"{spec.logical_id}: layer twice"
        assert len(spec.layers) <= 5, f"{spec.logical_id}: Lambda allows at most 5 layers"


def _canonical(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()  # PEP 503 name normalisation


@cache
def _import_names(dist: str) -> frozenset[str]:
    """Top-level import names of an installed distribution (e.g. pydantic-core ->
    pydantic_core)."""
    names = {
        top
        for top, dists in metadata.packages_distributions().items()
        if any(_canonical(d) == _canonical(dist) for d in dists)
    }
    assert names, f"{dist} is not installed in the test environment"
    return frozenset(names)


def _closure(reqs: list[Requirement]) -> set[str]:
    """Import names of the requirements and all their dependencies, as installed here
    (extras only where asked for, environment markers evaluated for this Python)."""
    seen: set[str] = set()
    names: set[str] = set()
    todo = [(r, frozenset(r.extras)) for r in reqs]
    while todo:
        req, extras = todo.pop()
        key = _canonical(req.name)
        if key in seen:
            continue
        seen.add(key)
        names |= _import_names(req.name)
        for text in metadata.requires(req.name) or []:
            dep = Requirement(text)
            envs = [{"extra": e} for e in extras] or [{"extra": ""}]
            if dep.marker is None or any(dep.marker.evaluate(env) for env in envs):
                todo.append((dep, frozenset(dep.extras)))
    return names


_IMPORT_PROBE = r"""
import importlib, importlib.abc, importlib.machinery, importlib.util, json, os, sys, sysconfig
allowed = set(json.loads(sys.argv[1]))
handler_file = sys.argv[2]
paths = sysconfig.get_paths()
std = (paths["stdlib"], paths["platstdlib"])
site = (paths["purelib"], paths["platlib"])
def from_stdlib(name):
    if name in sys.stdlib_module_names or name in sys.builtin_module_names:
        return True
    spec = importlib.machinery.PathFinder.find_spec(name)  # e.g. _sysconfigdata_*
    origin = (spec.origin or "") if spec else ""
    return origin.startswith(std) and not origin.startswith(site)
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in allowed or from_stdlib(top):
            return None
        raise ModuleNotFoundError(f"{name}: not in this function's layers", name=name)
before = set(sys.modules)
sys.meta_path.insert(0, Blocker())
spec = importlib.util.spec_from_file_location("app", handler_file)
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
if sys.argv[3:]:  # channels the function's schedules name: built as the handler would
    from algotrendy.data.channels import get_channel
    for source in sys.argv[3:]:
        get_channel(source)
for lazy in json.loads(os.environ.get("PROBE_LAZY_MODULES", "[]")):
    importlib.import_module(lazy)  # what some requests import when they are served
tops = {m.partition(".")[0] for m in set(sys.modules) - before}
print(json.dumps(sorted(t for t in tops if not from_stdlib(t))))
"""


def _image_requirements(spec: sam.FunctionSpec) -> list[Requirement]:
    """What the Dockerfile installs: the layers' files it copies plus inline pins."""
    text = spec.dockerfile.read_text()
    reqs: list[Requirement] = []
    for rel in re.findall(r"^COPY\s+(layers/\S+/requirements.txt)\s", text, re.M):
        lines = (ln.split("#", 1)[0].strip() for ln in (sam.ROOT / rel).read_text().splitlines())
        reqs += [Requirement(ln) for ln in lines if ln]
    reqs += [Requirement(m) for m in re.findall(r"\b([a-z][a-z0-9_-]*==[0-9][^\s\\]*)", text)]
    return reqs


def _scheduled_channel_sources(name: str) -> list[str]:
    """Channel sources named by the function's schedule inputs (ingest groups): the ingest
    handler imports a channel's library (ccxt, yfinance...) only when it builds it."""
    sources: list[str] = []
    resolver = sam._invoke_module().Resolver(TEMPLATE, region=sam.REGION)
    for ev in TEMPLATE["Resources"][name]["Properties"].get("Events", {}).values():
        if ev["Type"] == "Schedule" and "Input" in ev["Properties"]:
            group = json.loads(resolver.value(ev["Properties"]["Input"]))
            sources += [c["source"] for c in group.get("channels", [])]
    return sources


# Modules a function imports only while serving some requests, not at import: the API's
# market-data routes read candles as DataFrames (pandas) and compute indicators (numpy)
# when called, so that its other routes start without the numeric stack
# (tests/functions/test_cold_start_footprint.py); ResearchLayer is attached for them. The
# probe imports these after the handler, through the same layers.
LAZY_MODULES = {"ApiFunction": ["algotrendy.indicators", "pandas"]}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_imports_only_what_its_layers_provide_and_uses_each_layer(name: str) -> None:
    """The handler is imported in a fresh interpreter where every third-party module not
    provided by its layers (or the Lambda runtime) is made unimportable, as it is in
    Lambda. A heavy module the function does not need (pyarrow, ccxt, sqlalchemy...) makes
    this fail unless a layer is attached for it; a layer attached but never imported
    fails too (it only costs deployment size and cold start)."""
    spec = FUNCTIONS[name]
    per_layer: dict[str, set[str]] = {}
    if spec.is_image:  # everything is in the image: treat it as one layer
        per_layer["CoreLayer"] = {"algotrendy"}
        per_layer["image"] = _closure(_image_requirements(spec))
    for layer in spec.layers:
        if layer == "CoreLayer":
            per_layer[layer] = {"algotrendy"}
        else:
            per_layer[layer] = _closure(_requirements(layer))
    allowed = set().union(*per_layer.values()) | RUNTIME_MODULES
    env = {
        **os.environ,
        "AWS_DEFAULT_REGION": sam.REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "ALGOTRENDY_ARTEFACTS_BUCKET": "probe-bucket",
        "PROBE_LAZY_MODULES": json.dumps(LAZY_MODULES.get(name, [])),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _IMPORT_PROBE,
            json.dumps(sorted(allowed)),
            str(spec.handler_file),
            *_scheduled_channel_sources(name),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=spec.code_dir,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"{name} cannot import with its layers:\n{proc.stderr[-2000:]}"
    imported = set(json.loads(proc.stdout.splitlines()[-1]))
    for layer, names in per_layer.items():
        if layer == "image":
            continue  # one image, not separate layers: nothing to attach or detach
        direct = (
            {"algotrendy"}
            if layer == "CoreLayer"
            else set().union(*(_import_names(r.name) for r in _requirements(layer)))
        )
        # A package the runtime has too (dateutil, six: botocore imports them) does not
        # make a layer that bundles its own copy needed.
        assert imported & (direct - RUNTIME_MODULES), (
            f"{name}: attaches {layer} but imports none of {sorted(names - RUNTIME_MODULES)}"
        )


# ------------------------------------------------------------------------------ state machine


def _definition(name: str) -> tuple[Path, str, dict[str, Any]]:
    props = STATE_MACHINES[name]["Properties"]
    path = sam.ROOT / str(props["DefinitionUri"])
    return path, path.read_text(), props.get("DefinitionSubstitutions", {})


@pytest.mark.parametrize("name", sorted(STATE_MACHINES))
def test_definition_file_exists_and_substitutions_match(name: str) -> None:
    path, text, subs = _definition(name)
    assert path.is_file(), f"{name}: DefinitionUri {path} missing"
    json.loads(text)  # the file itself is JSON (placeholders sit inside strings)
    placeholders = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text))
    assert placeholders == set(subs), (
        f"{name}: placeholders without a substitution {placeholders - set(subs)}, "
        f"substitutions never used {set(subs) - placeholders}"
    )


def _lambda_tasks(states: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for state_name, state in states.items():
        if state.get("Resource", "").startswith("arn:aws:states:::lambda:invoke"):
            out.append((state_name, state))
        if "ItemProcessor" in state:
            out.extend(_lambda_tasks(state["ItemProcessor"]["States"]))
    return out


@pytest.mark.parametrize("name", sorted(STATE_MACHINES))
def test_lambda_tasks_invoke_template_functions_the_role_may_invoke(name: str) -> None:
    _path, text, subs = _definition(name)
    definition = json.loads(text)
    invoked = set()
    for state_name, state in _lambda_tasks(definition["States"]):
        placeholder = re.fullmatch(r"\$\{(\w+)\}", state["Parameters"]["FunctionName"])
        assert placeholder, f"{state_name}: FunctionName must be a substituted ARN"
        target = subs[placeholder.group(1)]
        assert isinstance(target, dict), f"{state_name}: {target} is not !GetAtt"
        assert "Fn::GetAtt" in target, f"{state_name}: {target} is not !GetAtt"
        function, attribute = target["Fn::GetAtt"]
        assert function in FUNCTIONS, f"{state_name}: {function} is not a function"
        assert attribute == "Arn", f"{state_name}: {target}"
        invoked.add(function)
    allowed = {
        p["LambdaInvokePolicy"]["FunctionName"]["Ref"]
        for p in STATE_MACHINES[name]["Properties"]["Policies"]
        if isinstance(p, dict) and "LambdaInvokePolicy" in p
    }
    assert invoked == allowed, "the role may invoke exactly the functions the ASL invokes"


@pytest.mark.parametrize("name", sorted(STATE_MACHINES))
def test_caught_error_names_are_library_errors(name: str) -> None:
    """Catch/Retry name the library's exception classes (Lambda reports the class name as
    the error type); a renamed class would silently stop matching."""
    _path, text, _subs = _definition(name)
    names: set[str] = set()

    def walk(states: dict[str, Any]) -> None:
        for state in states.values():
            for rule in [*state.get("Catch", []), *state.get("Retry", [])]:
                names.update(rule["ErrorEquals"])
            if "ItemProcessor" in state:
                walk(state["ItemProcessor"]["States"])

    walk(json.loads(text)["States"])
    custom = {n for n in names if not n.startswith(("States.", "Lambda.", "Sandbox."))}
    assert custom, "no library error is caught"
    for error in custom:
        cls = getattr(algotrendy.errors, error, None)
        assert isinstance(cls, type), f"{error} is not a class in algotrendy.errors"
        assert issubclass(cls, Exception), f"{error} is not an exception"


def test_distributed_map_may_start_its_child_executions() -> None:
    props = STATE_MACHINES["BacktestStateMachine"]["Properties"]
    name = sam.resolve_sub(TEMPLATE, props["Name"])
    granted = [
        p["StepFunctionsExecutionPolicy"]["StateMachineName"]
        for p in props["Policies"]
        if isinstance(p, dict) and "StepFunctionsExecutionPolicy" in p
    ]
    assert [sam.resolve_sub(TEMPLATE, g) for g in granted] == [name]


# ------------------------------------------------------------------------------ storage


def test_artefacts_bucket_is_encrypted_and_private() -> None:
    props = TEMPLATE["Resources"]["ArtefactsBucket"]["Properties"]
    block = props["PublicAccessBlockConfiguration"]
    assert all(block[k] is True for k in block)
    assert len(block) == 4
    rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rules
    assert rules[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in (
        "AES256",
        "aws:kms",
    )


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_settings_load_from_each_functions_template_environment(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment a deployed function gets (Globals + its own variables, parameters
    at their defaults) must be enough for `Settings`: otherwise every invocation fails
    in get_settings() before doing anything."""
    from algotrendy.config import Settings

    env = sam.function_environment(TEMPLATE, name)
    for var in list(os.environ):
        if var.startswith("ALGOTRENDY_"):
            monkeypatch.delenv(var)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    settings = Settings()
    assert settings.artefacts_bucket == sam.artefacts_bucket_name(TEMPLATE)


def test_functions_get_the_bucket_name_from_the_template() -> None:
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert env["ALGOTRENDY_ARTEFACTS_BUCKET"] == {"Ref": "ArtefactsBucket"}
    assert env["ALGOTRENDY_STAGE"] == {"Ref": "Stage"}
