"""The backtest Distributed Map's results go to S3, not into the execution's state.

Without a ResultWriter Step Functions assembles every child execution's result into the
Map state's output, and checks the 256 KiB payload limit on it before ResultPath null
drops it: a run of thousands of chunks (a receipt of ~40-100 bytes each) fails with
States.DataLimitExceeded. With the results exported to S3 the Map's own result is the Map
Run ARN and where the export's manifest is, the same size for 1 chunk or 10,000. moto
(5.2) does not enforce the limit; it does run the ResultWriter and write its manifest.
"""

from __future__ import annotations

import json
from typing import Any

from test_backtest_state_machine import _run, moto_config, state_machine  # noqa: F401


def test_map_results_are_exported_under_the_runs_prefix(
    state_machine: tuple[Any, str],  # noqa: F811 - the fixture imported above
    s3: Any,
    bucket: str,
    event: Any,
    read_json: Any,
) -> None:
    sfn, arn = state_machine
    result = _run(sfn, arn, "exported", event("backtest_state_machine"))

    assert result["status"] == "SUCCEEDED", result
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="backtests/exported/map-results/")
    manifests = [
        o["Key"] for o in listing.get("Contents", []) if o["Key"].endswith("manifest.json")
    ]
    assert len(manifests) == 1, listing.get("Contents")
    manifest = read_json(bucket, manifests[0])
    assert manifest["DestinationBucket"] == bucket
    assert ":mapRun:" in manifest["MapRunArn"]
    # The aggregate step still ranks every chunk's rows (the export is beside them).
    output = json.loads(result["output"])
    assert output["row_count"] == event("backtest_aggregate")["task_count"]
