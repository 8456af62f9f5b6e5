"""Run one built function's handler on an event, the way Lambda imports and calls it:
a stand-in for `sam local invoke`, which needs Docker.

    python scripts/invoke.py WebhookFunction --event events/webhook_strategy_json.json \
        [--build-dir .aws-sam/build] [--env-vars env.json] [--parameter-overrides K=V ...]

(`make invoke FN=... EVENT=... [ENV_VARS=...]` runs `sam build` first, then this.)

What it does, from the BUILT template (`.aws-sam/build/template.yaml`, Globals merged):
- The handler runs in a fresh interpreter started with `-S -P` and a clean `PYTHON*`
  environment, so no site-packages of the calling venv is on `sys.path` (and no `.pth`
  file, such as the editable install of algotrendy, is processed). `PYTHONPATH` is, in
  Lambda's order: the built function dir (/var/task), the built layers' `python/` dirs
  (/opt/python; the LAST listed layer first, as Lambda unpacks layers in order and a later
  one overwrites an earlier one's files), then a "runtime" dir holding only what the
  python3.11 runtime itself provides (boto3, botocore, s3transfer, jmespath, dateutil,
  six, urllib3; linked from this interpreter's site-packages) - so an import the layers do
  not provide fails here as it would in Lambda.
- Environment: Lambda's reserved variables (AWS_LAMBDA_FUNCTION_NAME, ..._MEMORY_SIZE,
  ..._VERSION, AWS_REGION, AWS_DEFAULT_REGION, LAMBDA_TASK_ROOT, _HANDLER, TZ=:UTC...),
  AWS_SAM_LOCAL=true as sam local sets it (Powertools then disables X-Ray tracing), then
  the function's Environment with intrinsic functions resolved like sam local does:
  parameters at their defaults (or --parameter-overrides), pseudo parameters of a fake
  account, and a plausible placeholder for resource attributes (a queue URL, a table
  name, an ARN). Secrets Manager/SSM dynamic references stay as their literal
  `{{resolve:...}}` text. `--env-vars` takes sam local's file format
  ({"<LogicalId>": {...}, "Parameters": {...}}), with two deliberate differences: a
  variable not in the template is added (sam local ignores it), and null unsets one.
  AWS credentials and AWS_EC2_METADATA_DISABLED pass through from the caller, as with
  sam local; `make invoke` removes the credentials, so AWS calls fail fast offline.
- A context object with Lambda's attributes; get_remaining_time_in_millis() counts down
  from the function's Timeout, and a handler still running at the Timeout is stopped
  ("Task timed out after N seconds", exit status 1) as Lambda would stop it.
- The handler's return value is printed as JSON on stdout (its logs go to stderr); an
  exception prints Lambda's error shape ({"errorMessage", "errorType", "stackTrace"}) and
  exits 1.

What it does NOT isolate, unlike `sam local invoke` (a Lambda base-image container):
- The interpreter and OS are this machine's CPython 3.11 and glibc, not Amazon Linux 2's;
  the layers' native wheels are the Lambda ones (manylinux_2_26 or older), which load here
  too, but a library missing from or different in AL2 would not show.
- The "runtime" packages are this interpreter's versions, not the runtime's.
- Memory is not limited (MemorySize only sets AWS_LAMBDA_FUNCTION_MEMORY_SIZE), the file
  system is not read-only outside /tmp, and there is no network sandbox: a handler that
  reaches AWS or the internet does so (offline it fails fast without credentials).
- No Lambda runtime API, no init-phase timeout, no container reuse between invocations.
- Container-image functions (PackageType: Image) run from the file system that
  scripts/image_tree.py assembles from their Dockerfile (`make image-trees`, no Docker):
  the task root as the code, the image's site-packages as the one layer, its CMD as the
  handler, its ENV under the function's Environment (image paths mapped into the tree,
  /tmp to an empty folder of the invocation). Not the image itself: see image_tree.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
# Import names of what the python3.11 Lambda runtime provides beside the standard library
# (its /var/runtime), linked into the child's last sys.path entry.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
# Time allowed to start the interpreter and import the handler before the Timeout starts
# counting (Lambda's init phase has its own 10 s limit).
INIT_ALLOWANCE_S = 10.0


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation short-form tags (!Ref, !Sub...) as data."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


class InvokeError(Exception):
    """A problem with the arguments or the build, reported as one line."""


def load_template(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InvokeError(f"{path} not found: run `make sam-build` (sam build) first")
    data = yaml.load(path.read_text(), Loader=_CfnLoader)
    if not isinstance(data, dict) or "Resources" not in data:
        raise InvokeError(f"{path}: not a CloudFormation template")
    return data


# ------------------------------------------------------------------ intrinsic resolution
_NO_VALUE = object()


class Resolver:
    """Resolves intrinsic functions to local values, as `sam local` does: parameters
    (defaults or overrides), pseudo parameters, and placeholders for resources."""

    def __init__(
        self,
        template: dict[str, Any],
        overrides: dict[str, str] | None = None,
        region: str = DEFAULT_REGION,
    ) -> None:
        self.template = template
        self.resources: dict[str, Any] = template.get("Resources", {})
        self.params = {
            k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()
        }
        self.params.update(overrides or {})
        self.pseudo = {
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Region": region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "algotrendy-local",
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{ACCOUNT_ID}:stack/local/0",
        }
        self.region = region

    def condition(self, name: str) -> bool:
        return bool(self.value(self.template["Conditions"][name]))

    def _name_of(self, logical_id: str) -> str:
        """The physical name a resource would get: its *Name property when given."""
        props = self.resources[logical_id].get("Properties", {})
        for key in ("QueueName", "TableName", "BucketName", "FunctionName", "Name", "TopicName"):
            if key in props:
                return str(self.value(props[key]))
        return logical_id

    def ref(self, name: str) -> Any:
        if name in self.params:
            return self.params[name]
        if name in self.pseudo:
            return self.pseudo[name]
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name not in self.resources:
            raise InvokeError(f"!Ref {name}: not a parameter, pseudo parameter or resource")
        kind = self.resources[name]["Type"]
        physical = self._name_of(name)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{ACCOUNT_ID}/{physical}"
        if kind in ("AWS::StepFunctions::StateMachine", "AWS::Serverless::StateMachine"):
            return f"arn:aws:states:{self.region}:{ACCOUNT_ID}:stateMachine:{physical}"
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:{self.region}:{ACCOUNT_ID}:{physical}"
        return physical

    def get_att(self, name: str, attribute: str) -> str:
        if name not in self.resources:
            raise InvokeError(f"!GetAtt {name}.{attribute}: no such resource")
        kind = self.resources[name]["Type"].split("::")[1].lower()
        physical = self._name_of(name)
        if attribute == "Arn":
            return f"arn:aws:{kind}:{self.region}:{ACCOUNT_ID}:{physical}"
        if attribute == "QueueUrl":
            return str(self.ref(name))
        return physical

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(x) for x in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.ref(str(arg))
            if key == "Fn::GetAtt":
                parts = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.get_att(str(parts[0]), str(parts[1]))
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::If":
                cond, yes, no = arg
                return self.value(yes if self.condition(str(cond)) else no)
            if key == "Fn::Join":
                sep, items = arg
                return str(sep).join(str(x) for x in self.value(items))
            if key == "Fn::Equals":
                a, b = (self.value(x) for x in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Condition":
                return self.condition(str(arg))
        return {
            k: v for k, v in ((k, self.value(v)) for k, v in node.items()) if v is not _NO_VALUE
        }

    def sub(self, arg: Any) -> str:
        text, names = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def one(m: re.Match[str]) -> str:
            key = m.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"  # ${!Literal}
            if key in names:
                return str(self.value(names[key]))
            if "." in key and key.split(".", 1)[0] in self.resources:
                res, att = key.split(".", 1)
                return self.get_att(res, att)
            return str(self.ref(key))

        return re.sub(r"\$\{([^}]+)\}", one, str(text))


def function_environment(
    template: dict[str, Any], logical_id: str, resolver: Resolver
) -> dict[str, str]:
    """Globals.Function.Environment merged with the function's own, resolved."""
    glob = template.get("Globals", {}).get("Function", {}).get("Environment", {})
    own = template["Resources"][logical_id].get("Properties", {}).get("Environment", {})
    merged = {**glob.get("Variables", {}), **own.get("Variables", {})}
    out: dict[str, str] = {}
    for name, raw in merged.items():
        value = resolver.value(raw)
        if value is _NO_VALUE:
            continue
        out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


# ------------------------------------------------------------------ the function
def function_spec(template: dict[str, Any], logical_id: str, build_dir: Path) -> dict[str, Any]:
    resources = template["Resources"]
    res = resources.get(logical_id)
    functions = sorted(k for k, v in resources.items() if v["Type"] == "AWS::Serverless::Function")
    if res is None or res["Type"] != "AWS::Serverless::Function":
        raise InvokeError(
            f"{logical_id!r} is not a function of the template: {', '.join(functions)}"
        )
    props = {**template.get("Globals", {}).get("Function", {}), **res.get("Properties", {})}
    if props.get("PackageType") == "Image":
        return image_function_spec(props, logical_id, build_dir.parent / "image" / logical_id)
    layers = []
    for layer in props.get("Layers", []):
        if not (isinstance(layer, dict) and set(layer) == {"Ref"}):
            raise InvokeError(f"{logical_id}: layer {layer!r} is not a layer of this stack")
        content = resources[layer["Ref"]]["Properties"]["ContentUri"]
        path = build_dir / str(content) / "python"
        if not path.is_dir():
            raise InvokeError(f"{logical_id}: layer {layer['Ref']} not built ({path})")
        layers.append(path.resolve())
    code = (build_dir / str(props["CodeUri"])).resolve()
    if not code.is_dir():
        raise InvokeError(f"{logical_id}: code not built ({code}); run sam build")
    return {"props": props, "code": code, "layers": layers}


RESERVED_IMAGE_ENV = ("LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "TZ", "LANG")


def image_function_spec(props: dict[str, Any], logical_id: str, tree: Path) -> dict[str, Any]:
    """A container-image function, run from the file system that scripts/image_tree.py
    assembled from its Dockerfile: its task root as the code, its site-packages as the one
    layer, its CMD as the handler and its ENV (image paths mapped into the tree; /tmp is
    the invocation's own, as Lambda's is) under the function's Environment."""
    manifest_path = tree / "image.json"
    if not manifest_path.is_file():
        raise InvokeError(
            f"{logical_id} is a container image and its file system is not assembled "
            f"({manifest_path}): run `make image-trees` (no Docker needed)"
        )
    manifest = json.loads(manifest_path.read_text())
    return {
        "props": {**props, "Handler": manifest["handler"]},
        "code": (tree / manifest["task_root"]).resolve(),
        "layers": [(tree / manifest["site_packages"]).resolve()],
        "image_env": manifest["env"],
        "image_root": tree.resolve(),
    }


def image_path(value: str, root: Path, tmp: Path) -> str:
    """`value` as where it is here if it is a path in the image: /tmp to `tmp` (Lambda's
    own /tmp at run time, the image's at build time), the image's folders under `root`
    (the assembled tree); any other value unchanged."""
    if value == "/tmp" or value.startswith("/tmp/"):
        return str(tmp / value.removeprefix("/tmp").lstrip("/"))
    if value.startswith(("/var/", "/opt/", "/etc/")):
        return str(root / value.lstrip("/"))
    return value


def image_environment(spec: dict[str, Any], lambda_tmp: Path) -> dict[str, str]:
    """The image's ENV as the function sees it, its paths mapped to where they are here."""
    return {
        name: image_path(value, spec["image_root"], lambda_tmp)
        for name, value in spec.get("image_env", {}).items()
        # Lambda sets its reserved variables itself; PIP_* serve the build.
        if name not in RESERVED_IMAGE_ENV and not name.startswith("PIP_")
    }


def runtime_dir(dest: Path) -> Path:
    """A folder holding only the runtime-provided packages, linked from this
    interpreter's site-packages."""
    dest.mkdir(parents=True, exist_ok=True)
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        base = entry.name.split("-", 1)[0].removesuffix(".py").lower()
        if base in RUNTIME_PACKAGES or base == "python_dateutil":
            (dest / entry.name).symlink_to(entry)
    return dest


_CHILD = r"""
import json, os, signal, sys, time, traceback, importlib
spec = json.loads(sys.argv[1])
deadline = time.monotonic() + spec["timeout"]

class Context:
    function_name = spec["function_name"]
    function_version = "$LATEST"
    invoked_function_arn = spec["arn"]
    memory_limit_in_mb = str(spec["memory"])
    aws_request_id = spec["request_id"]
    log_group_name = "/aws/lambda/" + spec["function_name"]
    log_stream_name = "local"
    identity = None
    client_context = None
    def get_remaining_time_in_millis(self):
        return max(0, int((deadline - time.monotonic()) * 1000))

def write(payload):
    with open(spec["result"], "w") as fh:
        json.dump(payload, fh)

def timed_out(signum, frame):
    raise TimeoutError("Task timed out after %.2f seconds" % spec["timeout"])

try:
    module_name, func_name = spec["handler"].rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), func_name)
    deadline = time.monotonic() + spec["timeout"]
    signal.signal(signal.SIGALRM, timed_out)
    signal.setitimer(signal.ITIMER_REAL, spec["timeout"])
    event = json.load(open(spec["event"]))
    result = handler(event, Context())
    signal.setitimer(signal.ITIMER_REAL, 0)
    write({"ok": True, "result": result})
except BaseException as exc:
    signal.setitimer(signal.ITIMER_REAL, 0)
    traceback.print_exc()
    write({"ok": False, "result": {
        "errorMessage": str(exc), "errorType": type(exc).__name__,
        "stackTrace": traceback.format_tb(exc.__traceback__)}})
    sys.exit(1)
"""


def parse_env_vars(path: Path | None, logical_id: str) -> dict[str, str | None]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvokeError(f"--env-vars {path}: {exc}") from None
    if not isinstance(data, dict):
        raise InvokeError(f"--env-vars {path}: expected an object of objects")
    out: dict[str, str | None] = {}
    for section in ("Parameters", logical_id):
        values = data.get(section, {})
        if not isinstance(values, dict):
            raise InvokeError(f"--env-vars {path}: {section!r} must be an object")
        for k, v in values.items():
            out[k] = None if v is None else str(v)
    return out


def invoke(
    logical_id: str,
    event_path: Path,
    build_dir: Path,
    env_vars: Path | None = None,
    overrides: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """Run the handler; (exit status, result or Lambda error object)."""
    template = load_template(build_dir / "template.yaml")
    spec = function_spec(template, logical_id, build_dir)
    if not event_path.is_file():
        raise InvokeError(f"event file {event_path} not found")
    try:
        json.loads(event_path.read_text())
    except json.JSONDecodeError as exc:
        raise InvokeError(f"event file {event_path}: not JSON ({exc})") from None
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    resolver = Resolver(template, overrides, region)
    props = spec["props"]
    timeout = float(resolver.value(props.get("Timeout", 3)))
    memory = int(resolver.value(props.get("MemorySize", 128)))
    name = str(resolver.value(props.get("FunctionName", logical_id)))
    handler = str(props["Handler"])

    with tempfile.TemporaryDirectory(prefix="algotrendy-invoke-") as tmp:
        runtime = runtime_dir(Path(tmp) / "runtime")
        result_file = Path(tmp) / "result.json"
        path = [str(spec["code"]), *(str(p) for p in reversed(spec["layers"])), str(runtime)]
        env = {
            k: v
            for k, v in os.environ.items()
            if k in ("PATH", "HOME", "LANG", "AWS_EC2_METADATA_DISABLED")
            or k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
        }
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(path),
                "PYTHONNOUSERSITE": "1",
                "PYTHONDONTWRITEBYTECODE": "1",  # the built dirs stand for read-only /opt
                "AWS_LAMBDA_FUNCTION_NAME": name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(timeout)),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": "local",
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
                "AWS_REGION": region,
                "AWS_DEFAULT_REGION": region,
                "AWS_SAM_LOCAL": "true",
                "LAMBDA_TASK_ROOT": str(spec["code"]),
                "LAMBDA_RUNTIME_DIR": str(runtime),
                "_HANDLER": handler,
                "TZ": ":UTC",
            }
        )
        lambda_tmp = Path(tmp) / "lambda-tmp"  # Lambda's /tmp: empty at a cold start
        lambda_tmp.mkdir()
        env.update(image_environment(spec, lambda_tmp))
        env.update(function_environment(template, logical_id, resolver))
        for key, value in parse_env_vars(env_vars, logical_id).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        child_spec = {
            "handler": handler,
            "timeout": timeout,
            "memory": memory,
            "function_name": name,
            "arn": f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}",
            "request_id": str(uuid.uuid4()),
            "event": str(event_path.resolve()),
            "result": str(result_file),
        }
        cmd = [sys.executable, "-S", "-P", "-c", _CHILD, json.dumps(child_spec)]
        started = time.monotonic()
        try:
            proc = subprocess.run(
                cmd,
                env=env,
                cwd=spec["code"],
                stdout=sys.stderr,  # the handler's prints and logs; the result goes to a file
                timeout=timeout + INIT_ALLOWANCE_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            elapsed = time.monotonic() - started
            return 1, {
                "errorMessage": f"Task timed out after {elapsed:.2f} seconds",
                "errorType": "TimeoutError",
            }
        if not result_file.is_file():
            return 1, {
                "errorMessage": f"Runtime exited with status {proc.returncode} before returning",
                "errorType": "Runtime.ExitError",
            }
        outcome = json.loads(result_file.read_text())
        return (0 if outcome["ok"] else 1), outcome["result"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("function", help="logical id of a function, e.g. WebhookFunction")
    parser.add_argument("--event", "-e", type=Path, required=True, help="event JSON file")
    parser.add_argument("--build-dir", type=Path, default=Path(".aws-sam/build"))
    parser.add_argument("--env-vars", "-n", type=Path, help="sam local's env-vars JSON file")
    parser.add_argument(
        "--parameter-overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="template parameters (default: their Default)",
    )
    args = parser.parse_args(argv)
    try:
        overrides = {}
        for item in args.parameter_overrides:
            key, sep, value = item.partition("=")
            if not sep:
                raise InvokeError(f"--parameter-overrides {item!r}: expected KEY=VALUE")
            overrides[key] = value
        status, result = invoke(args.function, args.event, args.build_dir, args.env_vars, overrides)
    except InvokeError as exc:
        print(f"invoke: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    return status


if __name__ == "__main__":
    sys.exit(main())
