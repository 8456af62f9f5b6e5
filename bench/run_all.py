"""Run every benchmark in this folder, one after the other, in fresh processes.

Each bench script runs the peers (TA-Lib, backtesting.py, vectorbt) and AlgoTrendy side by
side on the same data in one process and prints ratios; this runner only sequences them so
one machine's figures come from one session. Figures go to bench/README.md by hand.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    scripts = sorted(p for p in HERE.glob("bench_*.py"))
    failed = []
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        if subprocess.call([sys.executable, str(script)]) != 0:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
