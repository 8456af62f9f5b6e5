"""Password hashing with argon2id (argon2-cffi).

argon2id is OWASP's first choice for password storage (Password Storage Cheat Sheet).
The default cost is argon2-cffi's, RFC 9106's second recommended profile ("low memory":
t=3, m=64 MiB, p=4), about 50-100 ms per hash on one core; the parameters are written into
each hash, so raising them later only affects new hashes, and `needs_rehash` tells the
login path to upgrade an old one. Tests pass a cheaper `PasswordHasher`.

Unknown usernames still pay one verification (against a fixed dummy hash), so response
time does not reveal which usernames exist (OWASP Authentication Cheat Sheet,
"Authentication and error messages").
"""

from __future__ import annotations

import base64
import secrets

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import ARGON2_VERSION

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256  # bounds the hashing work a request can ask for


class PasswordPolicyError(ValueError):
    """The password does not meet the policy; the message says which rule."""


def check_policy(password: str) -> None:
    """NIST SP 800-63B section 5.1.1.2: length is what matters; no composition rules."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordPolicyError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordPolicyError(f"password must have at most {MAX_PASSWORD_LENGTH} characters")


def _unmatchable_hash(argon: _Argon2) -> str:
    """An encoded argon2id hash with this hasher's parameters, a random salt and a random
    digest: verifying any password against it does the full work of a real verification
    (argon2 recomputes the digest from the encoded parameters before comparing) and never
    matches. Hashing a dummy password instead cost one whole hash (~0.1-0.4 s) on every
    start of the API, /health's included."""

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode().rstrip("=")

    return (
        f"$argon2id$v={ARGON2_VERSION}$m={argon.memory_cost},t={argon.time_cost},"
        f"p={argon.parallelism}${b64(secrets.token_bytes(argon.salt_len))}"
        f"${b64(secrets.token_bytes(argon.hash_len))}"
    )


class PasswordHasher:
    """argon2id hash / verify. `time_cost`, `memory_cost` (KiB) and `parallelism` default to
    RFC 9106's low-memory profile."""

    def __init__(
        self, *, time_cost: int = 3, memory_cost: int = 65_536, parallelism: int = 4
    ) -> None:
        self._argon = _Argon2(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
        self._dummy = _unmatchable_hash(self._argon)

    def hash(self, password: str) -> str:
        check_policy(password)
        return self._argon.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True if `password` matches; a missing or malformed hash is a mismatch, after the
        same work as a real check."""
        if len(password) > MAX_PASSWORD_LENGTH:
            return False
        try:
            matched = self._argon.verify(stored_hash or self._dummy, password)
        except VerificationError:  # includes VerifyMismatchError
            return False
        except InvalidHashError:
            return self._spend_time(password)
        return matched and bool(stored_hash)

    def _spend_time(self, password: str) -> bool:
        """A verification against the dummy hash, whose result is always False."""
        try:
            self._argon.verify(self._dummy, password)
        except VerificationError:
            return False
        return False

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return self._argon.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True
