"""Checks on the output of `sam build` that the validators cannot make.

    python scripts/check_sam_build.py layout [--build-dir .aws-sam/build]
    python scripts/check_sam_build.py sizes  [--build-dir .aws-sam/build]
    python scripts/check_sam_build.py compile [--build-dir .aws-sam/build]
    python scripts/check_sam_build.py image-functions [--template template.yaml]

`layout`: the core layer (ContentUri shared/, BuildMethod python3.11) must hold the package
at python/algotrendy (DESIGN.md section 7), and no third-party package may leak into it
(third-party code goes in the layers under layers/); every function's built code must hold
its handler module (`sam build` only warns, "Skipping copy operation", when a CodeUri
does not exist, and succeeds).

`sizes`: each zip function's code plus all its layers (Globals layers + its own), unzipped,
must stay within Lambda's limit, and within the project's own budget where it sets one
(BUDGETS: the webhook <= 30 MB, DESIGN.md "Budgets"). AWS states Lambda's limit as 250 MB
and enforces 262,144,000 bytes (250 MiB; the error reads "Unzipped size must be smaller
than 262144000 bytes"), so the limit is 250 * 2**20 bytes. Sizes are the sum of regular
files' sizes, which is what
Lambda unpacks (symlinks are not followed).

`compile`: writes the bytecode of the project's own code in the build: the core layer and
every zip function's code. Lambda unpacks code and layers on a read-only file system, so
Python cannot cache bytecode there and compiles every module it imports from source at
each cold start; pip already compiled the third-party layers, `sam build` compiles
neither the core layer nor the functions. Hash-based pycs that are not checked against
their source (PEP 552, "unchecked-hash"): the build never changes once deployed, and a
timestamp check would depend on the zip keeping modification times. Needs the runtime's
own Python minor version (3.11): bytecode is version-specific. `layout` then checks that
every module of the core layer and every handler module has its pyc.

`image-functions`: the logical ids of container-image functions (PackageType: Image),
one per line, which the offline `sam build` excludes (building an image needs Docker).
Their size limit is 10 GB and is not measured here.

Runs with any Python 3.11 that has PyYAML (the SAM venv has it). Exit status 1 on a
failed check, with one line per problem.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml

LAMBDA_UNZIPPED_LIMIT_BYTES = 262_144_000  # 250 MiB
# Budgets tighter than Lambda's limit (DESIGN.md, "Budgets"): the webhook must cold-start
# fast enough for TradingView's ~3 s, so it stays under 30 MB (decimal, the stricter).
BUDGETS = {"WebhookFunction": 30_000_000}


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation short-form tags (!Ref, !Sub...) as data."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path) -> dict[str, Any]:
    with path.open() as fh:
        data = yaml.load(fh, Loader=_CfnLoader)
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: not a template")
    return data


def tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            p = Path(root) / name
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def _ref(value: Any) -> str | None:
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return str(value["Ref"])
    return None


def is_image(resource: dict[str, Any]) -> bool:
    return bool(resource.get("Properties", {}).get("PackageType") == "Image")


def image_functions(template: dict[str, Any]) -> list[str]:
    return sorted(
        name
        for name, res in template.get("Resources", {}).items()
        if res.get("Type") == "AWS::Serverless::Function" and is_image(res)
    )


def function_bundles(build_dir: Path) -> dict[str, list[tuple[str, Path]]]:
    """Zip function logical id -> [(part name, built directory)], code first, then layers."""
    template = load_template(build_dir / "template.yaml")
    resources: dict[str, Any] = template.get("Resources", {})
    global_layers = template.get("Globals", {}).get("Function", {}).get("Layers", [])
    out: dict[str, list[tuple[str, Path]]] = {}
    for name, res in resources.items():
        if res.get("Type") != "AWS::Serverless::Function" or is_image(res):
            continue
        props = res.get("Properties", {})
        parts = [(f"{name} (code)", build_dir / str(props["CodeUri"]))]
        for layer in [*global_layers, *props.get("Layers", [])]:
            ref = _ref(layer)
            if ref is None:
                raise SystemExit(f"{name}: layer {layer!r} is not a !Ref to a layer in this stack")
            content = resources[ref]["Properties"]["ContentUri"]
            parts.append((ref, build_dir / str(content)))
        out[name] = parts
    return out


RUNTIME_PYTHON = (3, 11)
PYC_TAG = f"cpython-{RUNTIME_PYTHON[0]}{RUNTIME_PYTHON[1]}"


def own_code_dirs(build_dir: Path) -> list[Path]:
    """The built directories holding the project's own code: the core layer's python/
    and every zip function's code."""
    dirs = [build_dir / "CoreLayer" / "python"]
    dirs += [parts[0][1] for _, parts in sorted(function_bundles(build_dir).items())]
    return dirs


def compile_own_code(build_dir: Path) -> list[str]:
    import compileall
    import py_compile

    if sys.version_info[:2] != RUNTIME_PYTHON:
        return [
            f"compile needs Python {RUNTIME_PYTHON[0]}.{RUNTIME_PYTHON[1]} (the functions' "
            f"runtime; bytecode is version-specific), not {sys.version.split()[0]}"
        ]
    problems: list[str] = []
    for path in own_code_dirs(build_dir):
        ok = compileall.compile_dir(
            path,
            quiet=1,
            workers=0,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
        if not ok:
            problems.append(f"{path}: some module does not compile (see above)")
    return problems


def missing_bytecode(build_dir: Path) -> list[Path]:
    """Modules of the project's own code in the build without their runtime pyc."""
    missing: list[Path] = []
    for path in own_code_dirs(build_dir):
        for source in sorted(path.rglob("*.py")):
            if ".dist-info" in str(source) or ".egg-info" in str(source):
                continue
            pyc = source.parent / "__pycache__" / f"{source.stem}.{PYC_TAG}.pyc"
            if not pyc.is_file():
                missing.append(source)
    return missing


def check_layout(build_dir: Path) -> list[str]:
    problems: list[str] = []
    template = load_template(build_dir / "template.yaml")
    for name, res in template.get("Resources", {}).items():
        if res.get("Type") == "AWS::Serverless::LayerVersion":
            built = build_dir / str(res["Properties"]["ContentUri"]) / "python"
            if not built.is_dir() or not any(built.iterdir()):
                problems.append(f"{name}: {built} missing or empty: the layer is misbuilt")
        if res.get("Type") != "AWS::Serverless::Function" or is_image(res):
            continue
        props = res.get("Properties", {})
        module = str(props.get("Handler", "")).rsplit(".", 1)[0].replace(".", "/")
        code = build_dir / str(props.get("CodeUri", ""))
        if not (code / f"{module}.py").is_file():
            problems.append(f"{name}: handler {module}.py not in the built code ({code})")
    core = build_dir / "CoreLayer" / "python"
    if not (core / "algotrendy" / "__init__.py").is_file():
        problems.append(f"{core}/algotrendy/__init__.py missing: the core layer is misbuilt")
    elif core.is_dir():
        extra = sorted(
            p.name
            for p in core.iterdir()
            if p.name not in ("algotrendy", "requirements.txt") and not p.name.endswith(".egg-info")
        )
        if extra:
            problems.append(f"{core}: unexpected entries beside algotrendy: {', '.join(extra)}")
    missing = missing_bytecode(build_dir)
    if missing:
        problems.append(
            f"{len(missing)} module(s) of the project's own code without {PYC_TAG} bytecode "
            f"(Lambda would compile them at every cold start), e.g. {missing[0]}: run "
            "`check_sam_build.py compile` after sam build"
        )
    return problems


def check_sizes(build_dir: Path, limit: int) -> tuple[list[str], list[str]]:
    lines: list[str] = []
    problems: list[str] = []
    cache: dict[Path, int] = {}
    for name, parts in sorted(function_bundles(build_dir).items()):
        total = 0
        detail = []
        for part, path in parts:
            if not path.is_dir():
                problems.append(f"{name}: {part} not built ({path} missing); run sam build")
                continue
            size = cache.setdefault(path, tree_size(path))
            total += size
            detail.append(f"{part} {size / 2**20:.1f}")
        budget = min(limit, BUDGETS.get(name, limit))
        verdict = "ok" if total <= budget else "OVER"
        lines.append(
            f"{name:32s} {total / 2**20:7.1f} MiB of {budget / 2**20:5.1f} [{verdict}]  = "
            + " + ".join(detail)
        )
        if total > budget:
            what = "Lambda's limit" if budget == limit else "its budget (BUDGETS)"
            problems.append(
                f"{name}: {total:,} bytes unzipped (code + layers), over {what} of "
                f"{budget:,} bytes by {(total - budget) / 2**20:.1f} MiB"
            )
    return lines, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("check", choices=["layout", "sizes", "compile", "image-functions"])
    parser.add_argument("--build-dir", type=Path, default=Path(".aws-sam/build"))
    parser.add_argument("--template", type=Path, default=Path("template.yaml"))
    parser.add_argument(
        "--limit-bytes", type=int, default=LAMBDA_UNZIPPED_LIMIT_BYTES, help="size limit"
    )
    args = parser.parse_args(argv)
    if args.check == "image-functions":
        print("\n".join(image_functions(load_template(args.template))))
        return 0
    if not (args.build_dir / "template.yaml").is_file():
        print(f"{args.build_dir}/template.yaml not found: run sam build first", file=sys.stderr)
        return 1
    if args.check == "compile":
        problems = compile_own_code(args.build_dir)
        if not problems:
            print(f"compiled ({PYC_TAG}, unchecked-hash): the core layer and every zip function")
    elif args.check == "layout":
        problems = check_layout(args.build_dir)
        if not problems:
            print(
                "build layout ok: python/algotrendy in CoreLayer, every layer built, every "
                "zip function's handler module built, the project's own code compiled"
            )
    else:
        lines, problems = check_sizes(args.build_dir, args.limit_bytes)
        print("\n".join(lines))
    for p in problems:
        print(f"FAIL {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
