"""scripts/image_tree.py (`make image-trees`): a container-image function's file system
replayed from its Dockerfile without Docker, and the worker run from it.

The small tests replay a fake Dockerfile (no pip, no network); the slow one runs the real
BacktestWorkerFunction from the tree `make image-trees` assembled: the image's own numba,
llvmlite, numpy and pandas pins, its precompiled numba cache, and S3 served by moto."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sam_template as sam
from invoke_s3 import invoke_built, s3_serving_candles

from algotrendy.backtest.sweep import SweepChunk, run_chunk
from algotrendy.data import load_ohlcv

image_tree = sam.script_module("image_tree")

DOCKERFILE = """\
# a comment
FROM public.ecr.aws/lambda/python:3.11
ENV SEED=${LAMBDA_TASK_ROOT}/seed \\
    CACHE=/tmp/cache
COPY pkg ${LAMBDA_TASK_ROOT}/pkg
COPY handler.py ${LAMBDA_TASK_ROOT}/app.py
COPY req.txt /tmp/req/req.txt
RUN rm -rf /tmp/req && \\
    OUT=${SEED} python -c "import os, pkg; open(os.environ['OUT'], 'w').write(pkg.VALUE)"
CMD ["app.handler"]
"""


def _context(tmp_path: Path, dockerfile: str = DOCKERFILE) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "pkg" / "__pycache__").mkdir(parents=True)
    (ctx / "pkg" / "__init__.py").write_text("VALUE = 'built'\n")
    (ctx / "pkg" / "__pycache__" / "junk.pyc").write_bytes(b"x")
    (ctx / "handler.py").write_text("def handler(event, context):\n    return event\n")
    (ctx / "req.txt").write_text("\n")
    (ctx / ".dockerignore").write_text("**/__pycache__\n")
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


def test_replay_copies_runs_and_records_handler_and_env(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    tree = tmp_path / "tree"
    manifest = image_tree.assemble(ctx / "Dockerfile", ctx, tree)
    task = tree / "var" / "task"
    assert (task / "app.py").read_text().startswith("def handler")
    assert (task / "pkg" / "__init__.py").is_file()
    assert not (task / "pkg" / "__pycache__" / "junk.pyc").exists(), ".dockerignore ignored"
    assert not (tree / "tmp" / "req").exists(), "rm -rf did not run"
    # The RUN step ran Python with the image's task root on its path and the command's
    # own variable, mapped from the image path to the tree.
    assert (task / "seed").read_text() == "built"
    assert manifest["handler"] == "app.handler"
    assert manifest["env"]["SEED"] == "/var/task/seed"  # as the function sees it
    assert manifest["env"]["CACHE"] == "/tmp/cache"
    assert json.loads((tree / "image.json").read_text()) == manifest


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        ("FROM public.ecr.aws/lambda/python:3.11", "FROM python:3.11-slim", "only public.ecr"),
        ('CMD ["app.handler"]', "WORKDIR /app", "WORKDIR is not replayed"),
        ("rm -rf /tmp/req", "apt-get install gcc", "not a command the stand-in replays"),
        ("COPY pkg ", "COPY missing ", "does not exist in the context"),
        ('CMD ["app.handler"]', "", "no CMD"),
    ],
)
def test_what_cannot_be_replayed_faithfully_is_refused_with_its_line(
    tmp_path: Path, replace: str, by: str, message: str
) -> None:
    assert replace in DOCKERFILE
    ctx = _context(tmp_path, DOCKERFILE.replace(replace, by))
    with pytest.raises(image_tree.ImageTreeError, match=message):
        image_tree.assemble(ctx / "Dockerfile", ctx, tmp_path / "tree")


def test_a_failing_run_step_names_the_command_and_its_output(tmp_path: Path) -> None:
    ctx = _context(tmp_path, DOCKERFILE.replace("import os, pkg;", "import os, nope;"))
    with pytest.raises(image_tree.ImageTreeError, match=r"(?s)RUN .*exit 1.*nope"):
        image_tree.assemble(ctx / "Dockerfile", ctx, tmp_path / "tree")


def test_the_template_names_the_workers_dockerfile_and_context() -> None:
    dockerfile, context = image_tree.image_source(
        sam.load_template(), "BacktestWorkerFunction", sam.ROOT
    )
    assert dockerfile == sam.ROOT / "functions" / "backtest_worker" / "Dockerfile"
    assert context == sam.ROOT
    with pytest.raises(image_tree.ImageTreeError, match="not a container-image function"):
        image_tree.image_source(sam.load_template(), "WebhookFunction", sam.ROOT)


# --- the real worker, from the tree `make image-trees` assembled

TREE = sam.ROOT / ".aws-sam" / "image" / "BacktestWorkerFunction"
CANDLES = sam.ROOT / "tests" / "fixtures" / "ohlcv" / "backtesting_GOOG_1d.csv"


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
@pytest.mark.skipif(
    not (TREE / "image.json").is_file() or not (sam.ROOT / ".aws-sam" / "build").is_dir(),
    reason="needs `make sam-build image-trees` (the worker's file system from its Dockerfile)",
)
def test_worker_runs_from_its_image_tree_on_precompiled_kernels(tmp_path: Path) -> None:
    """The worker image's contents (numba 0.67 / numpy 2.2 / pandas 2.3, not this venv's)
    run the sample chunk against S3 (moto's server) and give the rows this venv's code
    gives; the kernels come from the seed cache built into the image: the function's
    NUMBA_CACHE_DIR, empty at the start as Lambda's /tmp is, ends with exactly the seed's
    files, so nothing was compiled at the cold start."""
    event = json.loads((sam.EVENTS / "backtest_worker.json").read_text())
    seed = TREE / "var" / "task" / "numba-cache"
    assert _files(seed), "the image's precompile step left no cache"
    cache = tmp_path / "numba"  # the function's /tmp/numba, absent at a cold start
    with s3_serving_candles(event, CANDLES) as (url, s3):
        proc = invoke_built(
            "BacktestWorkerFunction",
            sam.EVENTS / "backtest_worker.json",
            sam.ROOT / ".aws-sam" / "build",
            {"AWS_ENDPOINT_URL": url, "NUMBA_CACHE_DIR": str(cache)},
            tmp_path,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        reply: dict[str, Any] = json.loads(proc.stdout)
        stored = json.loads(
            s3.get_object(Bucket=event["output"]["bucket"], Key=event["output"]["key"])["Body"]
            .read()
        )  # fmt: skip

    assert _files(cache) == _files(seed), "kernels were compiled at the cold start"
    expected = run_chunk(SweepChunk.model_validate(event["chunk"]), lambda _s: load_ohlcv(CANDLES))
    assert reply["row_count"] == len(expected) == len(event["chunk"]["params"])
    assert reply["output"] == event["output"]  # a receipt: the rows are in S3
    for got, want in zip(stored, expected, strict=True):
        assert got["params"] == want.params
        assert set(got["metrics"]) == set(want.metrics)
        for name, value in want.metrics.items():
            got_value = float(got["metrics"][name])  # "NaN"/"Infinity" as JSON strings
            assert got_value == pytest.approx(value, rel=1e-9, nan_ok=True), name
