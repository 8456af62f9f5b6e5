"""Who may post an alert: the webhook token in the URL, an optional passphrase in the body,
the source address, and the alert's age.

TradingView cannot set headers or sign requests and its help asks users not to put
credentials in the message (TradingView help, "How to configure webhook alerts"), so the
credential is the URL itself: `POST /webhooks/tradingview/{token}` with a 256-bit random
token per strategy. Only its SHA-256 is stored. A fast hash is right for a high-entropy
random token (no dictionary to try; OWASP Password Storage Cheat Sheet keeps slow hashes
for low-entropy passwords), and lookups by hash mean the comparison never sees the secret,
so response timing reveals nothing about it.

The optional passphrase is user-chosen, hence low-entropy: it is stored as scrypt
(parameters in the stored string) and compared with `hmac.compare_digest`. Default cost
N=2^14, r=8, p=1 (16 MiB, ~50 ms): scrypt's "interactive" setting (Percival, 2009). OWASP's
minimum for login passwords is N=2^17 (128 MiB); that costs a cold Lambda ~0.5-1 s of
TradingView's 3-second budget, so the default stays at 2^14 and `hash_passphrase(n=...)`
raises it per webhook. Successful verifications are remembered per process
(`PassphraseVerifier`), so warm invocations do not pay the KDF again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from algotrendy.webhooks.problems import WebhookError

# secrets.token_urlsafe(32) gives 43 characters; 32+ url-safe base64 characters carry
# >= 192 bits. Anything else cannot be one of our tokens and is not even hashed.
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
MIN_PASSPHRASE_LENGTH = 8
_SCRYPT_DEFAULT = (2**14, 8, 1)
_SCRYPT_MAXMEM = 256 * 1024 * 1024  # allows N up to 2^17 with r=8 (128 MiB) and headroom


def generate_webhook_token() -> str:
    """A new webhook token: 32 random bytes, url-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def hash_webhook_token(token: str) -> str:
    """What the config store keeps for a token: its SHA-256, lower-case hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_token(token: str | None) -> bool:
    return token is not None and TOKEN_PATTERN.fullmatch(token) is not None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_passphrase(
    passphrase: str,
    *,
    n: int = _SCRYPT_DEFAULT[0],
    r: int = _SCRYPT_DEFAULT[1],
    p: int = _SCRYPT_DEFAULT[2],
    salt: bytes | None = None,
) -> str:
    """`scrypt$N$r$p$salt$hash` (url-safe base64, 16-byte salt, 32-byte key)."""
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise ValueError(f"passphrase must have at least {MIN_PASSPHRASE_LENGTH} characters")
    if n < 2 or n & (n - 1):
        raise ValueError(f"scrypt N must be a power of two >= 2, got {n}")
    salt = secrets.token_bytes(16) if salt is None else salt
    key = hashlib.scrypt(
        passphrase.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=32
    )
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(key)}"


def parse_passphrase_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """(N, r, p, salt, key) of a stored hash; ValueError naming the part that is wrong."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("passphrase_hash must look like scrypt$N$r$p$salt$hash")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        raise ValueError("passphrase_hash: N, r, p must be integers, salt/hash base64") from None
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or 128 * n * r > _SCRYPT_MAXMEM:
        raise ValueError(f"passphrase_hash: unusable scrypt parameters N={n} r={r} p={p}")
    if len(salt) < 8 or len(key) < 16:
        raise ValueError("passphrase_hash: salt or hash too short")
    return n, r, p, salt, key


def verify_passphrase(candidate: str, stored: str) -> bool:
    """Constant-time comparison of scrypt(candidate) with the stored key."""
    n, r, p, salt, key = parse_passphrase_hash(stored)
    derived = hashlib.scrypt(
        candidate.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=len(key)
    )
    return hmac.compare_digest(derived, key)


class PassphraseVerifier:
    """`verify_passphrase` with a bounded per-process memory of successes.

    Keyed by (stored hash, SHA-256 of the candidate): the passphrase itself is never kept.
    Failures are not remembered, so every wrong guess pays the full KDF."""

    def __init__(self, max_entries: int = 1024) -> None:
        self._ok: OrderedDict[tuple[str, bytes], None] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def verify(self, candidate: str, stored: str) -> bool:
        key = (stored, hashlib.sha256(candidate.encode("utf-8")).digest())
        with self._lock:
            if key in self._ok:
                self._ok.move_to_end(key)
                return True
        if not verify_passphrase(candidate, stored):
            return False
        with self._lock:
            self._ok[key] = None
            if len(self._ok) > self._max:
                self._ok.popitem(last=False)
        return True


# ------------------------------------------------------------------------------ source address

Network = IPv4Network | IPv6Network


@lru_cache(maxsize=256)
def parse_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """Addresses or CIDR blocks; "0.0.0.0/0" (with "::/0") admits every source."""
    return tuple(ip_network(e, strict=False) for e in entries)


def source_allowed(source_ip: str | None, networks: Iterable[Network]) -> bool:
    """Whether the caller's address (API Gateway's `requestContext.identity.sourceIp`) is in
    one of the networks. An unknown or unparseable address is never allowed."""
    if not source_ip:
        return False
    try:
        addr: IPv4Address | IPv6Address = ip_address(source_ip.strip())
    except ValueError:
        return False
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr.version == net.version and addr in net for net in networks)


# ------------------------------------------------------------------------------ replay window


def check_replay(
    sent_at: datetime,
    now: datetime,
    *,
    window_seconds: int,
    max_skew_seconds: int,
    field: str = "timenow",
) -> None:
    """Refuse an alert whose `{{timenow}}` (when TradingView fired it) is older than the
    window or further in the future than the allowed clock skew. TradingView resends a
    failed delivery at most three times, 5 s apart, so a genuine delivery is seconds old."""
    age = now - sent_at
    if age > timedelta(seconds=window_seconds):
        raise WebhookError(
            422,
            "stale-alert",
            f"alert fired at {sent_at.isoformat()} is {age.total_seconds():.0f} s old; "
            f"alerts older than {window_seconds} s are refused as replays",
            field=field,
        )
    if -age > timedelta(seconds=max_skew_seconds):
        raise WebhookError(
            422,
            "stale-alert",
            f"alert time {sent_at.isoformat()} is {(-age).total_seconds():.0f} s in the "
            f"future; at most {max_skew_seconds} s of clock skew is allowed",
            field=field,
        )
