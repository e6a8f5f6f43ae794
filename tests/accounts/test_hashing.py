"""Password rules, and argon2id hashing off the event loop with its real parameters."""

from __future__ import annotations

import asyncio

import pytest
from argon2 import PasswordHasher

from contacts_cli.accounts.hashing import PasswordHashing
from contacts_cli.accounts.passwords import MAX_PASSWORD_BYTES, check_password
from contacts_cli.backends.errors import Invalid, Unavailable


@pytest.mark.parametrize(("password", "reason"), [
    ("", "at least 8 characters, got 0"),
    ("seven77", "at least 8 characters, got 7"),
    ("x" * (MAX_PASSWORD_BYTES + 1), f"at most {MAX_PASSWORD_BYTES} bytes"),
    ("é" * (MAX_PASSWORD_BYTES // 2 + 1), f"at most {MAX_PASSWORD_BYTES} bytes"),
    ("tab\there-is-bad", "control characters (U+0009 at character 4)"),
    ("new\nline-password", "control characters (U+000A at character 4)"),
])
def test_a_bad_password_is_refused_saying_why(password: str, reason: str) -> None:
    with pytest.raises(Invalid) as info:
        check_password(password)
    assert info.value.errors[0][0] == "password"
    assert reason in info.value.errors[0][1]


@pytest.mark.parametrize("password", [
    "eight888", "correct horse battery staple", "pässwörd mit ümläuten", "🔑" * 8,
    "x" * MAX_PASSWORD_BYTES, ":colons:are:fine:",
])
def test_a_good_password_is_kept_as_it_is(password: str) -> None:
    assert check_password(password) == password


async def test_real_parameters_hash_argon2id_and_verify_only_the_password() -> None:
    hashing = PasswordHashing()
    try:
        stored = await hashing.hash("correct horse battery staple")
        defaults = PasswordHasher()
        assert stored.startswith(
            f"$argon2id$v=19$m={defaults.memory_cost},t={defaults.time_cost},"
            f"p={defaults.parallelism}$")
        assert "correct horse" not in stored
        assert await hashing.verify(stored, "correct horse battery staple") is True
        assert await hashing.verify(stored, "correct horse battery stapl") is False
        assert await hashing.verify("not a hash", "whatever") is False
        assert hashing.needs_rehash(stored) is False
        again = await hashing.hash("correct horse battery staple")
        assert again != stored  # a fresh salt each time
        assert await hashing.verify_decoy("correct horse battery staple") is False
    finally:
        hashing.close()


async def test_the_event_loop_keeps_running_while_a_hash_is_computed() -> None:
    hashing = PasswordHashing()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        await hashing.hash("correct horse battery staple")
    finally:
        task.cancel()
        hashing.close()
    assert ticks > 10  # on the loop, a hash would have let the ticker run once at most


async def test_past_the_waiting_bound_a_check_is_refused_not_queued() -> None:
    hashing = PasswordHashing(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
                              workers=1, max_waiting=1)
    try:
        stored = await hashing.hash("correct horse battery")
        results = await asyncio.gather(
            *(hashing.verify(stored, "correct horse battery") for _ in range(3)),
            return_exceptions=True)
        assert results[:2] == [True, True]
        assert isinstance(results[2], Unavailable)
        assert "too many password checks" in str(results[2])
        assert await hashing.verify(stored, "correct horse battery") is True  # bound released
    finally:
        hashing.close()


def test_a_hasher_with_other_parameters_asks_for_a_rehash() -> None:
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    assert PasswordHashing().needs_rehash(cheap.hash("correct horse battery")) is True
    assert PasswordHashing().needs_rehash("garbage") is True
