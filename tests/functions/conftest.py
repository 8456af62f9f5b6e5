"""Handlers under moto: the S3 bucket is the one template.yaml declares (name resolved at
the parameter defaults), the sample candles are the real fixtures, the events are the
files in events/ (the exact Step Functions task inputs)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import sam_template as sam
from moto import mock_aws

from algotrendy.config import get_settings

OHLCV = Path(__file__).resolve().parents[1] / "fixtures" / "ohlcv"
# Symbol of the sample events -> the real fixture behind it.
SAMPLE_CANDLES = {
    "GOOG": OHLCV / "backtesting_GOOG_1d.csv",
    "EURUSD": OHLCV / "backtesting_EURUSD_1h.csv",
}


def load_event(name: str) -> dict[str, Any]:
    data = json.loads((sam.EVENTS / f"{name}.json").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture
def event() -> Callable[[str], dict[str, Any]]:
    """events/<name>.json, freshly parsed (tests may modify it)."""
    return load_event


def s3_key(uri: str) -> str:
    assert uri.startswith("s3://"), uri
    return uri.split("/", 3)[3]


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return sam.load_template()


@pytest.fixture(scope="session")
def bucket(template: dict[str, Any]) -> str:
    return str(sam.artefacts_bucket_name(template))


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, bucket: str) -> Iterator[None]:
    """The environment template.yaml gives the functions, with fake credentials."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", sam.REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("ALGOTRENDY_STAGE", "dev")
    monkeypatch.setenv("ALGOTRENDY_ARTEFACTS_BUCKET", bucket)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    # Settings refuses the placeholder JWT secret outside stage "local", though these
    # functions never use it; template.yaml gives them none (see
    # tests/infra: test_settings_load_from_each_functions_template_environment).
    monkeypatch.setenv("ALGOTRENDY_JWT_SECRET", "handler-tests-secret-0123456789abcdef")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def moto_config() -> dict[str, Any]:
    """moto's configuration for the test (a module may override this fixture)."""
    return {}


@pytest.fixture
def s3(aws_env: None, bucket: str, moto_config: dict[str, Any]) -> Iterator[Any]:
    """Mocked S3 with the artefacts bucket and the sample candles at the sample keys."""
    with mock_aws(config=moto_config or None):
        client = boto3.client("s3", region_name=sam.REGION)
        client.create_bucket(Bucket=bucket)
        data = load_event("backtest_state_machine")["data"]
        for symbol, uri in data.items():
            client.upload_file(str(SAMPLE_CANDLES[symbol]), bucket, s3_key(uri))
        yield client


@pytest.fixture
def handlers(s3: Any, template: dict[str, Any]) -> dict[str, Callable[..., Any]]:
    """Each function's handler, loaded fresh inside the mock (module-level clients are
    built at import, as in Lambda)."""
    out: dict[str, Callable[..., Any]] = {}
    for name, spec in sam.functions(template).items():
        module = sam.load_handler_module(spec)
        out[name] = getattr(module, spec.handler_name)
    return out


@pytest.fixture
def context() -> Any:
    return sam.FakeLambdaContext()


@pytest.fixture
def read_json(s3: Any) -> Callable[[str, str], Any]:
    def read(bucket: str, key: str) -> Any:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    return read


@pytest.fixture
def sample_candles() -> dict[str, Path]:
    return dict(SAMPLE_CANDLES)
