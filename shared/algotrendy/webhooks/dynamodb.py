"""DynamoDB adapter of the idempotency port: Powertools Idempotency (`idempotent_function`
over a `DynamoDBPersistenceLayer`), keyed on the intent id.

The table is the one Powertools documents ("Idempotency", required resources): partition
key `id` (string), TTL attribute `expiration`. Records are keyed
`algotrendy.webhook.intent#<sha256 of the intent id>`: a fixed prefix instead of Powertools'
default `<function name>.<module>.<qualname>`, so a renamed function or module never
forgets what was already delivered.

Powertools' protocol: a conditional put marks the key INPROGRESS (or fails because a record
exists); the winner runs the action and stores its reply (COMPLETED), or deletes the record
if the action raised. A loser gets the stored reply, or `IdempotencyAlreadyInProgressError`
while the winner runs; we then poll until the reply is there (`wait_seconds`). With the
Lambda context registered, an INPROGRESS record left by an invocation that timed out or
crashed expires with that invocation's deadline, so a resend is processed instead of being
blocked for the whole record lifetime.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)

from algotrendy.webhooks.idempotency import (
    DuplicateInFlightError,
    IdempotencyUnavailableError,
    Reply,
)

KEY_PREFIX = "algotrendy.webhook.intent"


class DynamoDbIdempotency:
    def __init__(
        self,
        table_name: str,
        *,
        client: Any | None = None,
        expires_after_seconds: int = 3600,
        wait_seconds: float = 1.5,
        poll_seconds: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.table_name = table_name
        self.wait_seconds = wait_seconds
        self.poll_seconds = poll_seconds
        self._sleep = sleep
        self.config = IdempotencyConfig(
            event_key_jmespath="intent_id",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=expires_after_seconds,
            hash_function="sha256",
        )
        self.persistence = DynamoDBPersistenceLayer(
            table_name=table_name,
            key_attr="id",
            expiry_attr="expiration",
            boto3_client=client,
        )

        @idempotent_function(  # type: ignore[untyped-decorator]
            data_keyword_argument="request",
            persistence_store=self.persistence,
            config=self.config,
            key_prefix=KEY_PREFIX,
        )
        def _once(*, request: dict[str, str], action: Callable[[], Reply]) -> Reply:
            return action()

        self._once: Callable[..., Any] = _once

    def register_lambda_context(self, context: Any) -> None:
        """Tie INPROGRESS records to this invocation's deadline (call once per invocation)."""
        self.config.register_lambda_context(context)

    def run_once(self, key: str, action: Callable[[], Reply]) -> Reply:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            try:
                reply = self._once(request={"intent_id": key}, action=action)
            except IdempotencyAlreadyInProgressError:
                if time.monotonic() >= deadline:
                    raise DuplicateInFlightError(f"{key}: still being processed") from None
                self._sleep(self.poll_seconds)
                continue
            except IdempotencyPersistenceLayerError as exc:
                raise IdempotencyUnavailableError(
                    f"idempotency table {self.table_name}: {exc}"
                ) from exc
            if not isinstance(reply, dict):
                raise IdempotencyUnavailableError(
                    f"idempotency table {self.table_name}: stored reply for {key} is not an object"
                )
            return reply
