"""Channel manager: runs channel jobs on a schedule and keeps each channel's health.

Health per channel (last success, last error, consecutive failures, latency) lives in the
cache (`algotrendy.storage.base.Cache`, namespace `health`), so the API, `algotrendy
channels status` and other processes read it without asking the manager. The local shape
runs `ChannelManager.run` as a plain loop; the clock is injected so tests drive time by
hand. In aws an EventBridge schedule replaces the loop and each invocation calls the same
jobs through `track_health`.

A failing job is retried with exponential backoff (interval x 2^(failures - 1), capped),
the usual answer to a rate limit or an outage: it stops hammering a source that is down
and comes back at the normal pace after the first success.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict

from algotrendy.errors import ParameterError
from algotrendy.storage.base import HEALTH_NAMESPACE, Cache

log = logging.getLogger(__name__)

DOWN_AFTER_FAILURES = 3
Status = Literal["ok", "degraded", "down", "unknown"]


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall clock for timestamps, monotonic clock for latencies and schedules."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class ChannelHealth(BaseModel):
    """Health of one channel. `status`: ok (last run succeeded), degraded (failing, fewer
    than `DOWN_AFTER_FAILURES` in a row), down (that many or more), unknown (never ran)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    channel: str
    last_success: AwareDatetime | None = None
    last_error: str | None = None
    last_error_at: AwareDatetime | None = None
    consecutive_failures: int = 0
    latency_ms: float | None = None
    runs: int = 0
    failures: int = 0

    @property
    def status(self) -> Status:
        if self.runs == 0:
            return "unknown"
        if self.consecutive_failures == 0:
            return "ok"
        return "down" if self.consecutive_failures >= DOWN_AFTER_FAILURES else "degraded"

    def succeeded(self, at: datetime, latency_ms: float) -> ChannelHealth:
        return self.model_copy(
            update={
                "last_success": at,
                "consecutive_failures": 0,
                "latency_ms": latency_ms,
                "runs": self.runs + 1,
            }
        )

    def failed(self, at: datetime, latency_ms: float, error: str) -> ChannelHealth:
        return self.model_copy(
            update={
                "last_error": error,
                "last_error_at": at,
                "consecutive_failures": self.consecutive_failures + 1,
                "latency_ms": latency_ms,
                "runs": self.runs + 1,
                "failures": self.failures + 1,
            }
        )


def load_health(cache: Cache, channel: str) -> ChannelHealth:
    raw = cache.get(HEALTH_NAMESPACE, channel)
    return ChannelHealth(channel=channel) if raw is None else ChannelHealth.model_validate(raw)


def all_health(cache: Cache) -> dict[str, ChannelHealth]:
    raw = cache.get_all(HEALTH_NAMESPACE)
    return {name: ChannelHealth.model_validate(raw[name]) for name in sorted(raw)}


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text or type(exc).__name__


@contextlib.contextmanager
def track_health(cache: Cache, channel: str, clock: Clock | None = None) -> Iterator[None]:
    """Time the block and record its outcome as one run of `channel`; exceptions are
    recorded and re-raised, never swallowed."""
    clk = clock or SystemClock()
    started = clk.monotonic()
    try:
        yield
    except BaseException as exc:
        latency = (clk.monotonic() - started) * 1000.0
        if isinstance(exc, Exception):
            cache.put(
                HEALTH_NAMESPACE,
                channel,
                load_health(cache, channel)
                .failed(clk.now(), latency, _describe(exc))
                .model_dump(mode="json"),
            )
        raise
    latency = (clk.monotonic() - started) * 1000.0
    cache.put(
        HEALTH_NAMESPACE,
        channel,
        load_health(cache, channel).succeeded(clk.now(), latency).model_dump(mode="json"),
    )


@dataclass
class Job:
    """`action` run every `every` for `channel`; `due` is on the clock's monotonic scale."""

    name: str
    channel: str
    every: timedelta
    action: Callable[[], object]
    due: float = 0.0
    failures: int = field(default=0)


@dataclass(frozen=True)
class JobRun:
    job: str
    channel: str
    ok: bool
    error: str | None = None


class ChannelManager:
    """Runs jobs when due and records each run in the channel's health."""

    def __init__(
        self,
        cache: Cache,
        *,
        clock: Clock | None = None,
        max_backoff: timedelta = timedelta(minutes=15),
    ) -> None:
        self.cache = cache
        self.clock = clock or SystemClock()
        self.max_backoff = max_backoff
        self.jobs: list[Job] = []

    def add_job(
        self,
        channel: str,
        action: Callable[[], object],
        every: timedelta,
        *,
        name: str | None = None,
    ) -> Job:
        if every <= timedelta(0):
            raise ParameterError(f"job for {channel}: interval must be positive, got {every}")
        job = Job(
            name=name or f"{channel}#{len(self.jobs) + 1}",
            channel=channel,
            every=every,
            action=action,
            due=self.clock.monotonic(),
        )
        self.jobs.append(job)
        return job

    def _delay(self, job: Job) -> float:
        base = job.every.total_seconds()
        if not job.failures:
            return base
        cap = max(self.max_backoff.total_seconds(), base)
        return float(min(base * 2 ** (job.failures - 1), cap))

    def run_pending(self) -> list[JobRun]:
        """Run every job that is due, in the order added; return what happened."""
        runs: list[JobRun] = []
        for job in self.jobs:
            if self.clock.monotonic() < job.due:
                continue
            try:
                with track_health(self.cache, job.channel, self.clock):
                    job.action()
            # A scheduler must outlive any one channel's failure: the error is recorded
            # in the channel's health and logged, and the job is retried with backoff.
            except Exception as exc:  # noqa: BLE001
                job.failures += 1
                runs.append(JobRun(job.name, job.channel, ok=False, error=_describe(exc)))
                log.warning("channel job %s failed: %s", job.name, _describe(exc))
            else:
                job.failures = 0
                runs.append(JobRun(job.name, job.channel, ok=True))
            job.due = self.clock.monotonic() + self._delay(job)
        return runs

    def run(self, *, cycles: int | None = None, stop: Callable[[], bool] | None = None) -> None:
        """Loop: run due jobs, sleep until the next one is due. Ends after `cycles` rounds
        or when `stop()` is true (checked each round); without either it runs forever."""
        done = 0
        while (cycles is None or done < cycles) and not (stop and stop()):
            self.run_pending()
            done += 1
            if not self.jobs:
                return
            wait = min(job.due for job in self.jobs) - self.clock.monotonic()
            if wait > 0 and (cycles is None or done < cycles):
                self.clock.sleep(wait)

    def health(self) -> dict[str, ChannelHealth]:
        return all_health(self.cache)
