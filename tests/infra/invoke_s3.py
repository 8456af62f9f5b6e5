"""A built function run in its own process (scripts/invoke.py) against moto's S3 server:
the worker's candles served where its event says, reached through AWS_ENDPOINT_URL.

One set-up for the test that runs the worker from its image tree
(tests/infra/test_image_tree.py) and the bench that times its cold start
(bench/bench_cold_imports.py --built): moto's in-process mock cannot reach another process.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
FAKE_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@contextmanager
def s3_serving_candles(event: dict[str, Any], candles: Path) -> Iterator[tuple[str, Any]]:
    """moto's S3 server on 127.0.0.1 holding `candles` at every location of the worker
    event's `data`; yields its endpoint URL and a client of it."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per S3 request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        s3 = boto3.client("s3", region_name=REGION, endpoint_url=url, **FAKE_KEYS)
        for where in event["data"].values():
            s3.create_bucket(Bucket=where["bucket"])
            s3.upload_file(str(candles), where["bucket"], where["key"])
        yield url, s3
    finally:
        server.stop()


def invoke_built(
    function: str,
    event: Path,
    build_dir: Path,
    env_vars: dict[str, str | None],
    workdir: Path,
) -> subprocess.CompletedProcess[str]:
    """`scripts/invoke.py FUNCTION` on `event` with `env_vars` (sam local's format: null
    unsets), in a clean environment holding only the fake credentials."""
    env_file = workdir / f"{function}-env.json"
    env_file.write_text(json.dumps({function: env_vars}))
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "invoke.py"), function, "--event", str(event),
         "--build-dir", str(build_dir), "--env-vars", str(env_file)],
        capture_output=True, text=True, timeout=600, check=False,
        env={"PATH": "/usr/bin:/bin", "AWS_EC2_METADATA_DISABLED": "true",
             **{k.upper(): v for k, v in FAKE_KEYS.items()}},
    )  # fmt: skip
