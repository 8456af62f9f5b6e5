"""Broker credentials: one small validated object per venue, every secret a `SecretStr`.

`SecretStr` renders as `'**********'` in `repr`, `str` and `model_dump_json`, so a
credentials object can be logged or put in an exception message without leaking
(pydantic docs, "Secret Types"). The raw value is only read where a request is signed,
through `reveal()`. Values come from the environment (`ALGOTRENDY_BROKER_<VENUE>_<FIELD>`,
the same prefix as `algotrendy.config.Settings`), or in AWS from SSM/Secrets Manager
resolved into those variables by the deployment. `RedactingFilter` is the second line of
defence: third-party clients (ccxt logs request headers at DEBUG, and the API key is a
header) go through a logger that masks every secret value.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, SecretStr

ENV_PREFIX = "ALGOTRENDY_BROKER_"
_FIELDS = ("api_key", "api_secret", "passphrase", "client_id", "client_secret", "refresh_token")


class BrokerCredentials(BaseModel):
    """Secrets for one venue account. Every field is optional: each adapter checks the ones
    it needs (ccxt: api_key + api_secret; TradeStation: client_id + client_secret +
    refresh_token; IB and NinjaTrader authenticate in the desktop client and need none)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    passphrase: SecretStr | None = None
    client_id: SecretStr | None = None
    client_secret: SecretStr | None = None
    refresh_token: SecretStr | None = None

    @classmethod
    def from_env(cls, venue: str, environ: Mapping[str, str] | None = None) -> BrokerCredentials:
        """Read `ALGOTRENDY_BROKER_<VENUE>_<FIELD>` (e.g. `ALGOTRENDY_BROKER_BINANCE_API_KEY`)."""
        env = os.environ if environ is None else environ
        prefix = f"{ENV_PREFIX}{venue.upper()}_"
        values = {f: env[prefix + f.upper()] for f in _FIELDS if env.get(prefix + f.upper())}
        return cls.model_validate(values)

    @staticmethod
    def reveal(secret: SecretStr | None) -> str | None:
        return None if secret is None else secret.get_secret_value()

    def secret_values(self) -> list[str]:
        """Every non-empty secret, for `RedactingFilter`."""
        out = []
        for name in _FIELDS:
            value = self.reveal(getattr(self, name))
            if value:
                out.append(value)
        return out

    def missing(self, *names: str) -> list[str]:
        return [n for n in names if not self.reveal(getattr(self, n))]


class RedactingFilter(logging.Filter):
    """Replaces each secret value in a log record's final message with `***`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, "***")
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True
