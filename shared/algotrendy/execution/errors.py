"""Broker errors named for what the engine must do, translated from each venue's errors at
the adapter boundary (`raise ... from exc`), as freqtrade's exceptions module does.

Retryable errors are retried with backoff by `algotrendy.execution.brokers.retry`; the rest
reject the order with the message as the reason.
"""

from __future__ import annotations


class BrokerError(Exception):
    """Base: the broker refused or failed the request."""

    retryable: bool = False


class RetryableBrokerError(BrokerError):
    """Temporary: network trouble, timeouts, venue maintenance. Retry with backoff."""

    retryable = True


class RateLimitedError(RetryableBrokerError):
    """The venue throttled us; retry after `retry_after` seconds when it says so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SubmitTimeoutError(RetryableBrokerError):
    """No reply to a submit: the order may or may not exist (status UNKNOWN until asked)."""


class InsufficientFundsError(BrokerError):
    """Not enough balance or margin: rejected, not retried."""


class InvalidOrderError(BrokerError):
    """The venue refused the order's parameters (size step, price filter, symbol): rejected."""


class OrderNotFoundError(BrokerError):
    """The venue knows no order with this id."""


class AuthenticationError(BrokerError):
    """Credentials refused: an operator must fix the settings; never retried."""
