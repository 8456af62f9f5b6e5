"""The `candles.closed` message: the ingest function tells the signal evaluator that a
series has new closed bars.

Payload (envelope type `candles.closed`, version 1)::

    {"exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h",
     "last_bar": "2024-05-01T11:00:00Z",    # open time of the newest closed bar
     "close_time": "2024-05-01T12:00:00Z",  # when that bar closed (last_bar + one bar)
     "new_since": "2024-05-01T09:00:00Z"}   # bars with open time >= this are new

`new_since` lets one message cover several bars (an ingest that caught up after an
outage): the evaluator compares the target in force before `new_since` with the target
after `last_bar`, so a crossover on a bar in between is not lost. The envelope id is
derived from the series and `last_bar`, so the same news sent twice has one id.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from algotrendy.messaging.base import Queue
from algotrendy.messaging.envelope import CANDLES_CLOSED, Envelope, EnvelopeError


class CandlesClosed(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    exchange: str = Field(min_length=1, max_length=64)
    symbol: str = Field(min_length=1, max_length=32)
    timeframe: str = Field(min_length=1, max_length=8)
    last_bar: AwareDatetime
    close_time: AwareDatetime
    new_since: AwareDatetime

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        # normalise's, not validation's (which loads pandas): every message the evaluator
        # receives is validated here.
        from algotrendy.data.normalise import parse_timeframe

        bar = parse_timeframe(self.timeframe)  # ParameterError (ValueError) on a bad spelling
        if self.new_since > self.last_bar:
            raise ValueError(
                f"new_since ({self.new_since.isoformat()}) is after last_bar "
                f"({self.last_bar.isoformat()})"
            )
        if self.close_time <= self.last_bar:
            raise ValueError("close_time must be after last_bar")
        if bar is not None and self.close_time - self.last_bar != bar:
            raise ValueError(
                f"close_time must be last_bar + {self.timeframe} "
                f"(got {self.close_time - self.last_bar})"
            )
        return self

    @property
    def series(self) -> str:
        return f"{self.exchange} {self.symbol} {self.timeframe}"

    def message_id(self) -> str:
        digest = hashlib.sha256(
            "|".join(
                (self.exchange, self.symbol, self.timeframe, self.last_bar.isoformat())
            ).encode()
        ).hexdigest()
        return f"cc-{digest[:40]}"

    def to_envelope(self, *, created_at: datetime | None = None) -> Envelope:
        return Envelope(
            type=CANDLES_CLOSED,
            id=self.message_id(),
            created_at=created_at or self.close_time,
            payload=self.model_dump(mode="json"),
        )

    @classmethod
    def from_envelope(cls, envelope: Envelope) -> CandlesClosed:
        if envelope.type != CANDLES_CLOSED:
            raise EnvelopeError(f"expected a {CANDLES_CLOSED} message, got {envelope.type!r}")
        if envelope.version != 1:
            raise EnvelopeError(f"{CANDLES_CLOSED} version {envelope.version} is not understood")
        try:
            return cls.model_validate(envelope.payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "payload"
            msg = str(first["msg"]).removeprefix("Value error, ")
            raise EnvelopeError(f"invalid {CANDLES_CLOSED} payload: {loc}: {msg}") from exc

    @classmethod
    def for_bars(
        cls,
        exchange: str,
        symbol: str,
        timeframe: str,
        *,
        last_bar: datetime,
        new_since: datetime | None = None,
    ) -> CandlesClosed:
        """The message for a series whose newest closed bar opened at `last_bar`."""
        from algotrendy.data.normalise import parse_timeframe, timeframe_seconds

        bar = parse_timeframe(timeframe) or timedelta(seconds=timeframe_seconds(timeframe))
        return cls(
            exchange=exchange,
            symbol=symbol,
            timeframe=timeframe,
            last_bar=last_bar,
            close_time=last_bar + bar,
            new_since=new_since or last_bar,
        )


def send_candles_closed(queue: Queue, message: CandlesClosed) -> str:
    """Enqueue on the signals queue (standard). On a FIFO queue the series is the group
    and the message id the de-duplication id."""
    return queue.send(
        message.to_envelope().to_json(),
        group_id=f"{message.exchange}:{message.symbol}:{message.timeframe}",
        dedup_id=message.message_id(),
        attributes={"type": CANDLES_CLOSED},
    )
