"""Tokens, passphrases, source addresses and the replay window."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from webhook_helpers import FAST_N

from algotrendy.config import TRADINGVIEW_WEBHOOK_IPS, Settings
from algotrendy.webhooks import (
    PassphraseVerifier,
    WebhookError,
    generate_webhook_token,
    hash_passphrase,
    hash_webhook_token,
    verify_passphrase,
)
from algotrendy.webhooks.auth import (
    check_replay,
    looks_like_token,
    parse_networks,
    parse_passphrase_hash,
    source_allowed,
)


def test_generated_tokens_are_long_random_and_url_safe() -> None:
    tokens = {generate_webhook_token() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert looks_like_token(token)
        # 43 url-safe base64 characters = 32 random bytes
        assert len(base64.urlsafe_b64decode(token + "=")) == 32


def test_token_hash_is_sha256_hex() -> None:
    token = generate_webhook_token()
    assert hash_webhook_token(token) == hashlib.sha256(token.encode()).hexdigest()


@pytest.mark.parametrize(
    "token", [None, "", "short", "a" * 31, "a" * 129, "has space" + "a" * 40, "../" + "a" * 40]
)
def test_malformed_tokens_are_not_tokens(token: str | None) -> None:
    assert not looks_like_token(token)


def test_passphrase_round_trip_with_default_cost() -> None:
    stored = hash_passphrase("correct horse battery")
    n, r, p, salt, key = parse_passphrase_hash(stored)
    assert (n, r, p) == (2**14, 8, 1)
    assert len(salt) == 16
    assert len(key) == 32
    # The stored key is scrypt itself, recomputed here from the stored salt.
    assert key == hashlib.scrypt(b"correct horse battery", salt=salt, n=n, r=r, p=p, dklen=32)
    assert verify_passphrase("correct horse battery", stored)
    assert not verify_passphrase("correct horse batterY", stored)


def test_same_passphrase_different_salts() -> None:
    a = hash_passphrase("abcdefgh", n=FAST_N)
    b = hash_passphrase("abcdefgh", n=FAST_N)
    assert a != b
    assert verify_passphrase("abcdefgh", a)
    assert verify_passphrase("abcdefgh", b)


@pytest.mark.parametrize(
    ("passphrase", "n", "needle"),
    [("short", 2**14, "at least 8"), ("long enough", 1000, "power of two")],
)
def test_hash_passphrase_refuses(passphrase: str, n: int, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        hash_passphrase(passphrase, n=n)


@pytest.mark.parametrize(
    "stored",
    [
        "sha256$abc",
        "scrypt$16384$8$1$c2FsdA",
        "scrypt$x$8$1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
        "scrypt$1000$8$1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",
        f"scrypt${2**20}$8$1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5",  # 1 GiB: refused
        "scrypt$16384$8$1$c2Fs$a2V5a2V5a2V5a2V5a2V5",  # 3-byte salt
    ],
)
def test_unusable_stored_hashes_are_refused(stored: str) -> None:
    with pytest.raises(ValueError, match="passphrase_hash"):
        parse_passphrase_hash(stored)


def test_verifier_remembers_successes_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import algotrendy.webhooks.auth as auth

    stored = hash_passphrase("abcdefgh", n=FAST_N)
    calls: list[str] = []
    real = auth.verify_passphrase

    def counting(candidate: str, s: str) -> bool:
        calls.append(candidate)
        return real(candidate, s)

    monkeypatch.setattr(auth, "verify_passphrase", counting)
    verifier = PassphraseVerifier(max_entries=2)
    assert verifier.verify("abcdefgh", stored)
    assert verifier.verify("abcdefgh", stored)
    assert not verifier.verify("wrong-one", stored)
    assert not verifier.verify("wrong-one", stored)
    # one KDF run for the two successes, one per failure
    assert calls == ["abcdefgh", "wrong-one", "wrong-one"]


def test_verifier_memory_is_bounded() -> None:
    stored = [hash_passphrase(f"passphrase-{i}", n=FAST_N) for i in range(3)]
    verifier = PassphraseVerifier(max_entries=2)
    for i, s in enumerate(stored):
        assert verifier.verify(f"passphrase-{i}", s)
    assert len(verifier._ok) == 2


# ------------------------------------------------------------------------------ sources


def test_default_allow_list_is_tradingviews_published_addresses() -> None:
    assert Settings().tradingview_allowed_ips == TRADINGVIEW_WEBHOOK_IPS
    assert set(TRADINGVIEW_WEBHOOK_IPS) == {
        "52.89.214.238",
        "34.212.75.30",
        "54.218.53.128",
        "52.32.178.7",
    }
    nets = parse_networks(TRADINGVIEW_WEBHOOK_IPS)
    for ip in TRADINGVIEW_WEBHOOK_IPS:
        assert source_allowed(ip, nets)
    assert not source_allowed("52.89.214.239", nets)


@pytest.mark.parametrize(
    ("ip", "entries", "allowed"),
    [
        ("10.1.2.3", ("10.0.0.0/8",), True),
        ("11.1.2.3", ("10.0.0.0/8",), False),
        ("203.0.113.7", ("0.0.0.0/0",), True),
        ("::ffff:52.89.214.238", ("52.89.214.238",), True),  # IPv4-mapped IPv6
        ("2001:db8::1", ("0.0.0.0/0",), False),
        ("2001:db8::1", ("::/0",), True),
        (None, ("0.0.0.0/0",), False),
        ("", ("0.0.0.0/0",), False),
        ("not-an-ip", ("0.0.0.0/0",), False),
        ("52.89.214.238", (), False),
    ],
)
def test_source_allowed(ip: str | None, entries: tuple[str, ...], allowed: bool) -> None:
    assert source_allowed(ip, parse_networks(entries)) is allowed


def test_settings_refuse_bad_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALGOTRENDY_TRADINGVIEW_ALLOWED_IPS", '["52.89.214.238", "nope"]')
    with pytest.raises(ValueError, match="'nope' is not an IP address"):
        Settings()


def test_settings_refuse_idempotency_shorter_than_replay_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALGOTRENDY_WEBHOOK_REPLAY_WINDOW_SECONDS", "600")
    monkeypatch.setenv("ALGOTRENDY_WEBHOOK_IDEMPOTENCY_TTL_SECONDS", "300")
    with pytest.raises(ValueError, match="IDEMPOTENCY_TTL_SECONDS"):
        Settings()


# ------------------------------------------------------------------------------ replay window

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("offset", "ok"),
    [
        (timedelta(0), True),
        (timedelta(seconds=-120), True),  # exactly the window: still accepted
        (timedelta(seconds=-121), False),
        (timedelta(seconds=30), True),  # exactly the skew
        (timedelta(seconds=31), False),
        (timedelta(days=-365), False),
    ],
)
def test_replay_window_boundaries(offset: timedelta, ok: bool) -> None:
    sent = NOW + offset
    if ok:
        check_replay(sent, NOW, window_seconds=120, max_skew_seconds=30)
        return
    with pytest.raises(WebhookError) as info:
        check_replay(sent, NOW, window_seconds=120, max_skew_seconds=30, field="time")
    assert info.value.status == 422
    assert info.value.kind == "stale-alert"
    assert info.value.field == "time"
    assert ("old" if offset < timedelta(0) else "future") in info.value.detail
