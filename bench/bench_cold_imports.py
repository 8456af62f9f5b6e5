"""Cold-start import time of every Lambda handler module (`python -X importtime`).

Budget (DESIGN §6): each function's import under 300 ms. Each handler is imported in a
fresh interpreter, from its own folder, with Lambda-like environment variables (so the
X-Ray SDK and Powertools behave as in Lambda); the figure is the cumulative import time of
the `app` module as `-X importtime` reports it, best and median of N fresh processes.
The numba-free path (`ALGOTRENDY_DISABLE_NUMBA=1`) is what zip functions run in AWS.

Run: .venv/bin/python bench/bench_cold_imports.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_MS = 300.0

LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "bench",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
    "POWERTOOLS_TRACE_DISABLED": "false",
    "ALGOTRENDY_STAGE": "dev",
    "ALGOTRENDY_DISABLE_NUMBA": "1",
}


def import_ms(function_dir: Path) -> float:
    env = {**os.environ, **LAMBDA_ENV}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import app"],
        cwd=function_dir, env=env, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    for line in proc.stderr.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == "app":
            return int(parts[1]) / 1000.0
    raise RuntimeError(f"no import time for app in {function_dir}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{'function':<22}{'best ms':>10}{'median ms':>11}  budget {BUDGET_MS:.0f} ms")
    for function_dir in sorted(p for p in (ROOT / "functions").iterdir() if p.is_dir()):
        if not (function_dir / "app.py").exists():
            continue
        times = [import_ms(function_dir) for _ in range(args.runs)]
        best, median = min(times), statistics.median(times)
        verdict = "MET" if best < BUDGET_MS else "MISSED"
        print(f"{function_dir.name:<22}{best:>10.0f}{median:>11.0f}  {verdict}")


if __name__ == "__main__":
    main()
