"""Password hashing: argon2id, and the same work for unknown users as for known ones."""

from __future__ import annotations

import argon2
import pytest

from algotrendy.auth.passwords import PasswordHasher, PasswordPolicyError

# Cheap parameters keep the tests fast; the checks hold for any.
PARAMS = {"time_cost": 2, "memory_cost": 1024, "parallelism": 2}


def test_hash_and_verify() -> None:
    hasher = PasswordHasher(**PARAMS)
    stored = hasher.hash("correct horse battery")
    assert hasher.verify(stored, "correct horse battery") is True
    assert hasher.verify(stored, "wrong horse battery") is False
    assert hasher.needs_rehash(stored) is False
    with pytest.raises(PasswordPolicyError, match="at least 10"):
        hasher.hash("short")


def test_unknown_users_verify_against_a_hash_of_the_same_cost() -> None:
    """The stand-in hash of unknown users carries the hasher's own parameters, so argon2
    does the same work as for a real user's hash; it is built without hashing anything
    (it was a whole argon2 hash on every API start) and matches no password."""
    hasher = PasswordHasher(**PARAMS)
    real = argon2.extract_parameters(hasher.hash("correct horse battery"))
    dummy = argon2.extract_parameters(hasher._dummy)
    assert dummy == real
    assert hasher.verify(None, "correct horse battery") is False
    assert hasher.verify("not a hash", "correct horse battery") is False
    assert PasswordHasher(**PARAMS)._dummy != hasher._dummy  # random salt and digest


def test_building_a_hasher_hashes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> str:
        raise AssertionError("argon2 hash called at start-up")

    monkeypatch.setattr(argon2.PasswordHasher, "hash", refuse)
    hasher = PasswordHasher(**PARAMS)
    assert hasher.verify(None, "any password at all") is False
