"""FRED (Federal Reserve Bank of St. Louis): economic series by id.

Endpoint ``fred/series/observations`` (https://fred.stlouisfed.org/docs/api/fred/series_observations.html)
returns ``{"observations": [{"date": "2020-01-01", "value": "21481.367", ...}]}``; a
missing observation is the string ``"."``, kept here as NaN (never dropped, never filled).
FRED allows 120 requests per minute per API key
(https://fred.stlouisfed.org/docs/api/fred/).
"""

from __future__ import annotations

import math
import os
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import requests

from algotrendy.data.channels.base import ChannelInfo
from algotrendy.data.channels.http import get_json
from algotrendy.data.channels.retry import RetryPolicy
from algotrendy.data.normalise import as_utc
from algotrendy.domain.market import AssetClass, DataKind
from algotrendy.errors import DataError, ParameterError

SOURCE = "fred"
URL = "https://api.stlouisfed.org/fred/series/observations"
API_KEY_ENV = "ALGOTRENDY_FRED_API_KEY"


class FredChannel:
    """Observations of one FRED series as a float Series indexed by UTC date."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        key = api_key or os.environ.get(API_KEY_ENV, "")
        if not key:
            raise ParameterError(
                f"{SOURCE}: no API key; pass api_key= or set {API_KEY_ENV} "
                "(free key: https://fred.stlouisfed.org/docs/api/api_key.html)"
            )
        self.name = SOURCE
        self._key = key
        self._session = session or requests.Session()
        self.retry = retry or RetryPolicy()
        self.info = ChannelInfo(
            name=SOURCE,
            asset_classes=(AssetClass.ECONOMIC,),
            kinds=(DataKind.ECONOMIC,),
            rate_limit_per_minute=120.0,
            doc_url="https://fred.stlouisfed.org/docs/api/fred/",
        )

    def fetch_series(
        self, series_id: str, since: datetime | None = None, until: datetime | None = None
    ) -> pd.Series:
        """Observations dated in [since, until] (FRED's bounds are inclusive dates)."""
        sid = series_id.strip().upper()
        if not sid:
            raise ParameterError("series_id must not be empty")
        params: dict[str, Any] = {"series_id": sid, "api_key": self._key, "file_type": "json"}
        if since is not None:
            params["observation_start"] = as_utc(since, name="since").strftime("%Y-%m-%d")
        if until is not None:
            params["observation_end"] = as_utc(until, name="until").strftime("%Y-%m-%d")
        reply = get_json(
            self._session,
            SOURCE,
            f"fetch series {sid}",
            URL,
            params,
            policy=self.retry,
        )
        return parse_observations(reply, sid)


def parse_observations(reply: Any, series_id: str) -> pd.Series:
    source = f"{SOURCE} {series_id}"
    if not isinstance(reply, dict) or not isinstance(reply.get("observations"), list):
        raise DataError(f"{source}: reply has no 'observations' list")
    dates: list[str] = []
    values: list[float] = []
    for pos, obs in enumerate(reply["observations"]):
        if not isinstance(obs, dict) or "date" not in obs or "value" not in obs:
            raise DataError(f"{source}: observation {pos + 1} lacks date/value")
        raw = str(obs["value"]).strip()
        try:
            values.append(math.nan if raw == "." else float(raw))
        except ValueError as exc:
            raise DataError(
                f"{source}: observation {pos + 1} ({obs['date']}): value {raw!r} is not a number"
            ) from exc
        dates.append(str(obs["date"]))
    try:
        index = pd.DatetimeIndex(pd.to_datetime(dates, format="%Y-%m-%d"), name="time")
    except ValueError as exc:
        raise DataError(f"{source}: unreadable observation date ({exc})") from exc
    index = index.tz_localize("UTC").as_unit("ns")
    return pd.Series(np.asarray(values, dtype=np.float64), index=index, name=series_id)
