"""Where backtests run: the `BacktestLauncher` port and its two adapters.

* `LocalBacktestLauncher` (local shape): a background thread in the API process runs the
  backtest or sweep with the library (`run_backtest`; `plan_sweep` -> `run_chunk` ->
  `aggregate`, the very steps the AWS fan-out runs) on candles from the candle store, and
  stores the ranked rows in `backtest_results`. Cancellation is checked between symbols
  and between chunks.
* `StepFunctionsBacktestLauncher` (aws shape): `StartExecution` of the backtest state
  machine (statemachines/backtest.asl.json) named after the run id; `sync` reads the
  execution's state with `DescribeExecution` and, once it succeeded, stores the top rows
  the aggregate step wrote to S3 (the execution output only says where: it must stay
  under Step Functions' 256 KiB); `cancel` is `StopExecution`.

Both record the run's life in the `backtests` table: queued -> running -> succeeded |
failed | cancelled; a run that ended is never overwritten (a late worker cannot revive a
cancelled run).
"""

from __future__ import annotations

import json
import math
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

from algotrendy.api.observability import logger
from algotrendy.api.schemas import BacktestRequest
from algotrendy.errors import AlgoTrendyError, DataError, ParameterError
from algotrendy.storage.base import CandleStore
from algotrendy.storage.relational.api_models import BacktestRow
from algotrendy.storage.relational.api_repositories import BacktestRepository, ResultInput


class BacktestCancelledError(Exception):
    """Raised inside a local run when its cancellation was requested."""


class LaunchError(AlgoTrendyError):
    """Where backtests run refused or failed to start one (throttled, execution limit,
    access denied, unreachable); the message names the cause. The request itself was
    fine: the API answers 503 and the run is recorded as failed."""


class BacktestLauncher(Protocol):
    name: str

    def start(self, backtest_id: str, request: BacktestRequest, exchange: str) -> str | None:
        """Start the run; returns an external handle (execution ARN) if any."""
        ...

    def cancel(self, row: BacktestRow) -> None:
        """Ask the run to stop (the route has already recorded the request)."""
        ...

    def sync(self, row: BacktestRow) -> None:
        """Bring the stored status up to date with where the run executes."""
        ...


def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars unwrapped, NaN/inf -> None, timestamps ISO 8601."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    # A numpy scalar exists only once numpy is loaded; looking it up instead of importing it
    # keeps numpy out of the API's cold start (the routes that produce such values load it).
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "isoformat"):  # datetime, date, pandas Timestamp
        return value.isoformat()
    return value


def _rank_key(metric: str, ascending: bool) -> Callable[[ResultInput], tuple[int, float]]:
    def key(r: ResultInput) -> tuple[int, float]:
        v = r.metrics.get(metric)
        if v is None:
            return (1, 0.0)  # NaN / missing ranks last, as in sweep.aggregate
        return (0, float(v) if ascending else -float(v))

    return key


def equity_payload(frame: Any) -> dict[str, Any]:
    """An equity DataFrame (equity, position, drawdown by bar time) as columns."""
    return {
        "time": [t.isoformat() for t in frame.index],
        "equity": jsonable(frame["equity"].tolist()),
        "position": jsonable(frame["position"].tolist()),
        "drawdown": jsonable(frame["drawdown"].tolist()),
    }


class LocalBacktestLauncher:
    name = "local"

    def __init__(
        self,
        repo: BacktestRepository,
        store: CandleStore,
        *,
        chunk_size: Callable[[], int] = lambda: 50,
        max_workers: int = 1,
    ) -> None:
        self.repo = repo
        self.store = store
        self.chunk_size = chunk_size
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="backtest")
        self._futures: dict[str, Future[None]] = {}
        self._lock = threading.Lock()

    def start(self, backtest_id: str, request: BacktestRequest, exchange: str) -> str | None:
        future = self._pool.submit(self._run, backtest_id, request, exchange)
        with self._lock:
            self._futures[backtest_id] = future
        return None

    def cancel(self, row: BacktestRow) -> None:
        # A queued run never starts (the transition to running fails); a running one sees
        # the flag at its next check.
        if row.status == "queued":
            self.repo.transition(row.id, "cancelled", finished_at=datetime.now(UTC))

    def sync(self, row: BacktestRow) -> None:
        return None

    def wait(self, backtest_id: str, timeout: float | None = None) -> None:
        """Block until the run's thread ends (tests, graceful shutdown)."""
        with self._lock:
            future = self._futures.get(backtest_id)
        if future is not None:
            future.result(timeout=timeout)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- the run -------------------------------------------------------------------------
    def _check_cancel(self, backtest_id: str) -> None:
        if self.repo.cancel_requested(backtest_id):
            raise BacktestCancelledError(backtest_id)

    def _run(self, backtest_id: str, request: BacktestRequest, exchange: str) -> None:
        now = datetime.now(UTC)
        if not self.repo.transition(backtest_id, "running", started_at=now):
            return  # cancelled while queued
        try:
            data = self._load(request, exchange)
            self._check_cancel(backtest_id)
            if request.grid is None:
                summary, results = self._single(backtest_id, request, data)
            else:
                summary, results = self._sweep(backtest_id, request, data)
            self.repo.finish(backtest_id, summary, results)
        except BacktestCancelledError:
            self.repo.transition(backtest_id, "cancelled", finished_at=datetime.now(UTC))
        except AlgoTrendyError as exc:
            self.repo.transition(
                backtest_id, "failed", error=str(exc), finished_at=datetime.now(UTC)
            )
        except Exception as exc:  # noqa: BLE001 - a worker thread records every failure
            logger.exception("backtest failed", extra={"backtest_id": backtest_id})
            self.repo.transition(
                backtest_id,
                "failed",
                finished_at=datetime.now(UTC),
                error=f"internal error ({type(exc).__name__})",
            )

    def _load(self, request: BacktestRequest, exchange: str) -> dict[str, Any]:
        out = {}
        for symbol in request.symbols:
            frame = self.store.read(exchange, symbol, request.timeframe, request.start, request.end)
            if frame.empty:
                raise DataError(
                    f"no {request.timeframe} candles for {exchange}:{symbol} in the requested "
                    "range; ingest them first (algotrendy ingest)"
                )
            out[symbol] = frame
        return out

    def _single(
        self, backtest_id: str, request: BacktestRequest, data: Mapping[str, Any]
    ) -> tuple[dict[str, Any], list[ResultInput]]:
        from algotrendy.backtest.runner import run_backtest
        from algotrendy.backtest.sweep import default_ascending

        results = []
        settings = request.config.model_dump()
        for symbol, frame in data.items():
            self._check_cancel(backtest_id)
            result = run_backtest(
                frame, request.strategy, request.params, symbol=symbol, **settings
            )
            as_dict = result.to_dict()
            results.append(
                ResultInput(
                    rank=0,
                    symbol=symbol,
                    params=jsonable(result.params),
                    metrics=jsonable(result.metrics),
                    trades=jsonable(as_dict["trades"]),
                    equity=equity_payload(result.equity),
                )
            )
        results.sort(key=_rank_key(request.metric, default_ascending(request.metric)))
        ranked = [
            ResultInput(i + 1, r.symbol, r.params, r.metrics, r.trades, r.equity)
            for i, r in enumerate(results)
        ]
        summary = {
            "metric": request.metric,
            "n_results": len(ranked),
            "best": {
                "symbol": ranked[0].symbol,
                "params": ranked[0].params,
                "metrics": ranked[0].metrics,
            },
        }
        return summary, ranked

    def _sweep(
        self, backtest_id: str, request: BacktestRequest, data: Mapping[str, Any]
    ) -> tuple[dict[str, Any], list[ResultInput]]:
        from algotrendy.backtest.metric_names import METRICS
        from algotrendy.backtest.runner import run_backtest
        from algotrendy.backtest.sweep import aggregate, as_source, plan_sweep, run_chunk

        assert request.grid is not None
        source, symbols = as_source(dict(data), request.symbols)
        plan = plan_sweep(
            request.strategy,
            request.grid,
            symbols,
            config=request.config,
            chunk_size=self.chunk_size(),
        )
        rows = []
        for chunk in plan.chunks:
            self._check_cancel(backtest_id)
            rows.extend(run_chunk(chunk, source))
        ranked = aggregate(rows, metric=request.metric, top=request.top)
        results = []
        for record in ranked.to_dict(orient="records"):
            params = {k: jsonable(record[k]) for k in plan.param_names}
            metrics = {k: jsonable(record[k]) for k in record if k in METRICS}
            results.append(ResultInput(int(record["rank"]), str(record["symbol"]), params, metrics))
        if results:
            # The best row again in full, for its trades and equity curve.
            self._check_cancel(backtest_id)
            best = results[0]
            full = run_backtest(
                data[best.symbol],
                request.strategy,
                best.params,
                symbol=best.symbol,
                **request.config.model_dump(),
            )
            results[0] = ResultInput(
                best.rank,
                best.symbol,
                best.params,
                best.metrics,
                trades=jsonable(full.to_dict()["trades"]),
                equity=equity_payload(full.equity),
            )
        summary = {
            "metric": request.metric,
            "n_combos": plan.n_combos,
            "n_skipped": plan.n_skipped,
            "n_tasks": plan.n_tasks,
            "n_chunks": len(plan.chunks),
            "best": _best(results),
        }
        return summary, results


def _best(results: Sequence[ResultInput]) -> dict[str, Any] | None:
    """The top-ranked result's summary (results come ranked), None when there is none."""
    if not results:
        return None
    top = results[0]
    return {"symbol": top.symbol, "params": top.params, "metrics": top.metrics}


_SFN_STATUS = {
    "RUNNING": "running",
    "PENDING_REDRIVE": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "TIMED_OUT": "failed",
    "ABORTED": "cancelled",
}


class StepFunctionsBacktestLauncher:
    name = "stepfunctions"

    def __init__(
        self,
        client: Any,
        state_machine_arn: str,
        repo: BacktestRepository,
        *,
        chunk_size: Callable[[], int] = lambda: 50,
        s3: Any | None = None,
    ) -> None:
        self.client = client
        self.arn = state_machine_arn
        self.repo = repo
        self.chunk_size = chunk_size
        self._s3 = s3

    @property
    def s3(self) -> Any:
        """The S3 client that reads the aggregate step's top rows, built on first use (a
        run's first successful sync), not at the API's cold start."""
        if self._s3 is None:
            from algotrendy.aws_clients import botocore_client

            self._s3 = botocore_client("s3")
        return self._s3

    def execution_input(self, request: BacktestRequest) -> dict[str, Any]:
        """The state machine's input: the `BacktestRequest` of functions/backtest_plan."""
        if not request.data:
            raise ParameterError(
                "data: backtests on Step Functions read candles from S3; give each symbol's "
                's3:// URI, e.g. {"BTC/USDT": "s3://<artefacts bucket>/candles/btc_1d.csv"}'
            )
        grid: Any = request.grid
        if grid is None:
            grid = {k: [v] for k, v in (request.params or {}).items()}
            if not grid:
                from algotrendy.strategies import get_strategy

                grid = {
                    k: [v] for k, v in get_strategy(request.strategy).params().model_dump().items()
                }
        return {
            "strategy": request.strategy,
            "grid": grid,
            "symbols": request.symbols,
            "config": request.config.model_dump(mode="json"),
            "data": request.data,
            "chunk_size": self.chunk_size(),
            "metric": request.metric,
            "top": request.top,
        }

    def execution_arn(self, backtest_id: str) -> str:
        """The ARN the run's execution has (or would have): it is named after the run id."""
        return f"{self.arn.replace(':stateMachine:', ':execution:', 1)}:{backtest_id}"

    def start(self, backtest_id: str, request: BacktestRequest, exchange: str) -> str | None:
        payload = self.execution_input(request)
        # botocore is loaded by then (the client made the call): not imported at cold start.
        from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as BotoConnectionError

        try:
            reply = self.client.start_execution(
                stateMachineArn=self.arn, name=backtest_id, input=json.dumps(payload)
            )
            arn = str(reply["executionArn"])
        except ClientError as exc:  # AWS answered: a definite refusal, nothing started
            error = exc.response.get("Error", {})
            code = error.get("Code") or "error"
            message = error.get("Message") or str(exc)
            raise LaunchError(f"Step Functions StartExecution failed: {code}: {message}") from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            # No answer: AWS may have accepted the call and lost only the reply (a read
            # timeout; or an earlier attempt of botocore's own retries got through before
            # this one failed to connect). The execution's name is the run id, so ask.
            arn = self._started_anyway(backtest_id, exc)
        except BotoCoreError as exc:
            raise LaunchError(f"Step Functions StartExecution failed: {exc}") from exc
        self.repo.transition(
            backtest_id, "running", execution_arn=arn, started_at=datetime.now(UTC)
        )
        return arn

    def _started_anyway(self, backtest_id: str, lost: Exception) -> str:
        """The ARN of the run's execution if StartExecution created it although its answer
        was lost; LaunchError if it does not exist. botocore has already repeated the
        call (safe: the same name and input return the same STANDARD execution), so a
        further StartExecution would meet the same outage; what is left to know is whether
        any attempt got through, which DescribeExecution answers without starting
        anything. If that cannot be told either, the run is failed with the ARN named."""
        from botocore.exceptions import BotoCoreError, ClientError

        arn = self.execution_arn(backtest_id)
        try:
            self.client.describe_execution(executionArn=arn)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "ExecutionDoesNotExist":
                raise LaunchError(f"Step Functions StartExecution failed: {lost}") from lost
            raise LaunchError(
                f"Step Functions StartExecution failed: {lost}; whether {arn} started is "
                f"unknown (DescribeExecution: {code})"
            ) from exc
        except BotoCoreError as exc:
            raise LaunchError(
                f"Step Functions StartExecution failed: {lost}; whether {arn} started is "
                f"unknown (DescribeExecution: {exc})"
            ) from exc
        logger.warning(
            "StartExecution's answer was lost but the execution exists",
            extra={"backtest_id": backtest_id, "execution_arn": arn},
        )
        return arn

    def cancel(self, row: BacktestRow) -> None:
        if row.execution_arn:
            self.client.stop_execution(
                executionArn=row.execution_arn, cause="cancelled through the API"
            )
        self.repo.transition(row.id, "cancelled", finished_at=datetime.now(UTC))

    def sync(self, row: BacktestRow) -> None:
        if row.status in ("succeeded", "failed", "cancelled") or not row.execution_arn:
            return
        reply = self.client.describe_execution(executionArn=row.execution_arn)
        status = _SFN_STATUS.get(str(reply.get("status")), "running")
        if status == "running":
            return
        stopped = reply.get("stopDate") or datetime.now(UTC)
        if status == "succeeded":
            output = json.loads(reply.get("output") or "{}")
            try:
                records = self._top_records(output)
            except DataError as exc:
                self.repo.transition(row.id, "failed", finished_at=stopped, error=str(exc))
                return
            summary, results = self._results(output, records)
            self.repo.finish(row.id, summary, results)
        elif status == "failed":
            error = reply.get("error") or "execution failed"
            cause = reply.get("cause")
            self.repo.transition(
                row.id,
                "failed",
                finished_at=stopped,
                error=f"{error}: {cause}" if cause else str(error),
            )
        else:
            self.repo.transition(row.id, "cancelled", finished_at=stopped)

    def _top_records(self, output: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The ranked records the aggregate step wrote to S3 (`top_records` in its reply);
        a reply that carries them inline (`top`, executions from before they moved to S3)
        is read as is."""
        where = output.get("top_records")
        if where is None:
            return list(output.get("top") or [])
        from botocore.exceptions import ClientError

        uri = f"s3://{where['bucket']}/{where['key']}"
        try:
            body = self.s3.get_object(Bucket=where["bucket"], Key=where["key"])["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                # The bucket's lifecycle expires backtests/ objects; nothing can bring them back.
                raise DataError(
                    f"the run succeeded but its results at {uri} no longer exist "
                    "(expired with the run's artefacts); start it again"
                ) from None
            raise  # transient (throttled, 5xx): the next sync reads it again
        records = json.loads(body)
        if not isinstance(records, list):
            raise DataError(f"{uri}: expected a JSON array of ranked records")
        return records

    @staticmethod
    def _results(
        output: Mapping[str, Any], records: Sequence[Mapping[str, Any]]
    ) -> tuple[dict[str, Any], list[ResultInput]]:
        """The aggregate step's reply and its ranked records, flat (rank, symbol,
        parameter columns, metric columns)."""
        from algotrendy.backtest.metric_names import METRICS

        results = []
        for record in records:
            params = {
                k: v for k, v in record.items() if k not in METRICS and k not in ("rank", "symbol")
            }
            metrics = {k: v for k, v in record.items() if k in METRICS}
            results.append(
                ResultInput(
                    int(record["rank"]), str(record["symbol"]), jsonable(params), jsonable(metrics)
                )
            )
        summary = {
            "metric": output.get("metric"),
            "n_results": output.get("row_count"),
            "ranking": output.get("ranking"),
            "best": _best(results),
        }
        return summary, results
