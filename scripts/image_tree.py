"""Assemble a container-image function's file system from its Dockerfile, without Docker.

    python scripts/image_tree.py BacktestWorkerFunction [--template template.yaml]
        [--out .aws-sam/image]

(`make image-trees` runs it for every PackageType: Image function of the template.)

There is no Docker engine here (nor in CI), so `sam build` skips the image functions and
nothing would ever run what the image holds: numba and llvmlite beside the layers' numpy
and pandas pins, the core package, and what the Dockerfile's RUN steps make. This replays
the Dockerfile's instructions into `<out>/<LogicalId>/`, mapping each image path to the
same path under that folder (`/var/task` -> `<tree>/var/task`):

- FROM must be the Lambda python3.11 base image (the runtime the zip functions use); its
  own variables (LAMBDA_TASK_ROOT=/var/task, LAMBDA_RUNTIME_DIR=/var/runtime) are set.
- ENV sets variables for the later steps and for the function (`image.json`).
- COPY copies from the build context (the template's DockerContext), honouring the
  `.dockerignore` patterns that name folders or files by name.
- RUN runs each `&&`-joined command with the image's variables: `pip install` installs
  into the image's site-packages (/var/lang/lib/python3.11/site-packages) with the Lambda
  platform's wheels (manylinux2014 x86_64, CPython 3.11, as layers/pip-layer.mk does);
  `python ...` runs this machine's Python 3.11 with only the image's packages and the
  runtime's (boto3...) on its path; `rm -rf` removes inside the tree. Leading `VAR=value`
  words set variables for that command, as a shell would.
- CMD gives the handler.
Any other instruction or command is refused with its line number: the stand-in does only
what it can do faithfully.

What it does not reproduce: the base image's own files (its Python and Amazon Linux 2's
glibc: this machine's CPython 3.11 stands in, as in scripts/invoke.py), users, file modes
and layer caching. `scripts/invoke.py` runs a function from its tree, and
bench/bench_cold_imports.py --built times its import.

The tree's `image.json` records the handler, the image's variables (image paths, as the
function sees them) and where the task root and site-packages are.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import invoke  # scripts/invoke.py: the template loader and the runtime dir

BASE_IMAGE = "public.ecr.aws/lambda/python:3.11"
BASE_ENV = {
    "LAMBDA_TASK_ROOT": "/var/task",
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
    "LANG": "en_US.UTF-8",
    "TZ": ":/etc/localtime",
}
SITE_PACKAGES = "/var/lang/lib/python3.11/site-packages"
PIP_PLATFORM = [
    "--platform", "manylinux2014_x86_64", "--implementation", "cp",
    "--python-version", "3.11", "--abi", "cp311",
]  # fmt: skip
MANIFEST = "image.json"


class ImageTreeError(Exception):
    """A Dockerfile the stand-in cannot replay faithfully, or a step that failed."""


def instructions(dockerfile: Path) -> list[tuple[int, str, str]]:
    """(line number, INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    out: list[tuple[int, str, str]] = []
    pending = ""
    start = 0
    for number, raw in enumerate(dockerfile.read_text().splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = pending + line
        pending = ""
        word, _, rest = text.partition(" ")
        out.append((start, word.upper(), rest.strip()))
    if pending:
        raise ImageTreeError(f"{dockerfile}: ends inside a continued line")
    return out


def expand(text: str, env: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return env.get(name, "")

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)


class Tree:
    """The image's file system under `root`, and the variables set so far."""

    def __init__(self, root: Path, context: Path, runtime: Path) -> None:
        self.root = root.resolve()
        self.context = context
        self.runtime = runtime  # the Lambda runtime's own packages (boto3...), not in the image
        self.env = dict(BASE_ENV)
        self.handler: str | None = None
        self.ignore = _dockerignore(context)
        self.path(self.env["LAMBDA_TASK_ROOT"]).mkdir(parents=True)  # the base's WORKDIR

    def path(self, image_path: str) -> Path:
        if not image_path.startswith("/"):
            image_path = f"{self.env['LAMBDA_TASK_ROOT']}/{image_path}"  # the base WORKDIR
        return self.root / image_path.lstrip("/")

    def map_value(self, value: str) -> str:
        """An image path as a path in the tree (the build's /tmp is the image's); anything
        else unchanged."""
        return invoke.image_path(value, self.root, self.root / "tmp")

    def python_env(self, extra: dict[str, str]) -> dict[str, str]:
        """The variables of a RUN step: the image's, with its paths mapped into the tree,
        Python on only the image's task root and packages (+ the runtime's)."""
        env = {k: self.map_value(v) for k, v in {**self.env, **extra}.items()}
        env.update(
            {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(self.root / "root"),
                "PYTHONPATH": os.pathsep.join(
                    [str(self.path("/var/task")), str(self.path(SITE_PACKAGES)), str(self.runtime)]
                ),
                "PYTHONNOUSERSITE": "1",
            }
        )
        return env

    # --- instructions
    def from_(self, args: str) -> None:
        if args.split()[0] != BASE_IMAGE:
            raise ImageTreeError(f"FROM {args}: only {BASE_IMAGE} (the functions' runtime)")

    def env_(self, args: str) -> None:
        for word in shlex.split(args):
            name, sep, value = word.partition("=")
            if not sep:
                raise ImageTreeError(f"ENV {args}: use the NAME=value form")
            self.env[name] = expand(value, self.env)

    def copy(self, args: str) -> None:
        words = shlex.split(expand(args, self.env))
        if len(words) != 2 or words[0].startswith("--"):
            raise ImageTreeError(f"COPY {args}: one source and one destination, no flags")
        source, dest = self.context / words[0], self.path(words[1])
        if not source.exists():
            raise ImageTreeError(f"COPY {args}: {source} does not exist in the context")
        if source.is_dir():
            shutil.copytree(source, dest, ignore=self._ignored, dirs_exist_ok=True)
        else:
            target = dest / source.name if words[1].endswith("/") else dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)

    def _ignored(self, folder: str, names: list[str]) -> set[str]:
        """`.dockerignore` patterns, matched against each name and its context path
        (`**/` matches at any depth)."""
        rel = Path(folder).resolve().relative_to(self.context.resolve())
        patterns = [p.removeprefix("**/") for p in self.ignore]
        return {
            n
            for n in names
            if any(fnmatch.fnmatch(n, p) or fnmatch.fnmatch(str(rel / n), p) for p in patterns)
        }

    def run(self, args: str) -> None:
        for command in re.split(r"\s*&&\s*", args):
            words = shlex.split(command)
            extra: dict[str, str] = {}
            while words and re.fullmatch(r"\w+=.*", words[0]):
                name, _, value = words.pop(0).partition("=")
                extra[name] = expand(value, {**self.env, **extra})
            words = [expand(w, {**self.env, **extra}) for w in words]
            self._run_one(words, extra, command)

    def _run_one(self, words: list[str], extra: dict[str, str], command: str) -> None:
        if words[:2] == ["pip", "install"]:
            site = self.path(SITE_PACKAGES)
            site.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site),
                   *PIP_PLATFORM, *(self.map_value(w) for w in words[2:])]  # fmt: skip
            env = {**os.environ, **{k: self.map_value(v) for k, v in self.env.items()}}
            env.pop("PYTHONPATH", None)
        elif words[:2] == ["rm", "-rf"]:
            for target in words[2:]:
                shutil.rmtree(self.path(target), ignore_errors=True)
            return
        elif words and words[0] in ("python", "python3", "python3.11"):
            cmd = [sys.executable, "-S", *(self.map_value(w) for w in words[1:])]
            env = self.python_env(extra)
        else:
            raise ImageTreeError(f"RUN {command}: not a command the stand-in replays")
        proc = subprocess.run(
            cmd, env=env, cwd=self.path("/var/task"), capture_output=True, text=True,
            timeout=1800, check=False,
        )  # fmt: skip
        if proc.returncode:
            raise ImageTreeError(f"RUN {command}: exit {proc.returncode}\n{proc.stderr[-3000:]}")
        if proc.stdout.strip():
            print(proc.stdout.strip())

    def cmd(self, args: str) -> None:
        try:
            value = json.loads(args)
        except json.JSONDecodeError:
            value = None
        if not (isinstance(value, list) and len(value) == 1 and isinstance(value[0], str)):
            raise ImageTreeError(f'CMD {args}: expected ["module.function"]')
        self.handler = value[0]


def _dockerignore(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    lines = (ln.strip() for ln in path.read_text().splitlines())
    return [ln.rstrip("/") for ln in lines if ln and not ln.startswith(("#", "!"))]


def image_source(
    template: dict[str, Any], logical_id: str, template_dir: Path
) -> tuple[Path, Path]:
    res = template.get("Resources", {}).get(logical_id)
    if not res or res.get("Properties", {}).get("PackageType") != "Image":
        raise ImageTreeError(f"{logical_id}: not a container-image function of the template")
    meta = res.get("Metadata", {})
    if "Dockerfile" not in meta or "DockerContext" not in meta:
        raise ImageTreeError(f"{logical_id}: Metadata needs Dockerfile and DockerContext")
    context = (template_dir / str(meta["DockerContext"])).resolve()
    return context / str(meta["Dockerfile"]), context


def assemble(dockerfile: Path, context: Path, dest: Path) -> dict[str, Any]:
    """Replay `dockerfile` into a fresh `dest`; returns (and writes) its manifest."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="image-tree-runtime-") as tmp:
        tree = Tree(dest, context, invoke.runtime_dir(Path(tmp) / "runtime"))
        steps = {"FROM": tree.from_, "ENV": tree.env_, "COPY": tree.copy, "RUN": tree.run,
                 "CMD": tree.cmd}  # fmt: skip
        for number, word, args in instructions(dockerfile):
            step = steps.get(word)
            if step is None:
                raise ImageTreeError(
                    f"{dockerfile}:{number}: {word} is not replayed by the stand-in"
                )
            try:
                step(args)
            except ImageTreeError as exc:
                raise ImageTreeError(f"{dockerfile}:{number}: {exc}") from None
    if tree.handler is None:
        raise ImageTreeError(f"{dockerfile}: no CMD (the handler)")
    manifest = {
        "dockerfile": str(dockerfile),
        "handler": tree.handler,
        "env": tree.env,
        "task_root": "var/task",
        "site_packages": SITE_PACKAGES.lstrip("/"),
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("functions", nargs="+", help="logical ids of image functions")
    parser.add_argument("--template", type=Path, default=Path("template.yaml"))
    parser.add_argument("--out", type=Path, default=Path(".aws-sam/image"))
    args = parser.parse_args(argv)
    template = invoke.load_template(args.template)
    try:
        for name in args.functions:
            dockerfile, context = image_source(template, name, args.template.resolve().parent)
            manifest = assemble(dockerfile, context, args.out / name)
            print(f"{name}: {dockerfile.relative_to(context)} replayed into {args.out / name} "
                  f"(handler {manifest['handler']})")  # fmt: skip
    except ImageTreeError as exc:
        print(f"image-tree: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
