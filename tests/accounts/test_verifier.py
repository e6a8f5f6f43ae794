"""The verifier's cache: hits spare argon2, and never outlive a password change or removal.

The lookup here is a dict standing for the account actors (their own tests use PostgreSQL);
the clock is injected, so expiry is tested without sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from contacts_cli.accounts.hashing import PasswordHashing
from contacts_cli.accounts.verifier import Verifier
from tests.accounts.conftest import cheap_hashing


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Fixture:
    def __init__(self, hashing: PasswordHashing, ttl: float = 60.0) -> None:
        self.hashing = hashing
        self.stored: dict[str, str] = {}
        self.lookups = 0
        self.clock = Clock()
        self.verifier = Verifier(self.lookup, hashing, ttl=ttl, clock=self.clock, max_entries=3)

    async def lookup(self, name: str) -> str | None:
        self.lookups += 1
        return self.stored.get(name)

    async def set(self, name: str, password: str) -> None:
        self.stored[name] = await self.hashing.hash(password)


@pytest.fixture
async def fx() -> AsyncIterator[Fixture]:
    hashing = cheap_hashing()
    fixture = Fixture(hashing)
    await fixture.set("alice", "alice-password")
    yield fixture
    hashing.close()


async def test_a_success_is_cached_and_a_failure_is_not(fx: Fixture) -> None:
    verify = fx.verifier.verify
    assert await verify("alice", "alice-password") is True
    assert fx.verifier.verifications == 1
    for _ in range(5):
        assert await verify("alice", "alice-password") is True
    assert fx.verifier.verifications == 1
    assert fx.lookups == 6  # the stored hash is read every time; argon2 ran once
    assert await verify("alice", "wrong-password") is False
    assert await verify("alice", "wrong-password") is False
    assert fx.verifier.verifications == 3
    assert await verify("alice", "alice-password") is True
    assert fx.verifier.verifications == 3


async def test_an_entry_expires_after_its_ttl(fx: Fixture) -> None:
    assert await fx.verifier.verify("alice", "alice-password")
    fx.clock.now += 59.9
    assert await fx.verifier.verify("alice", "alice-password")
    assert fx.verifier.verifications == 1
    fx.clock.now += 0.2
    assert await fx.verifier.verify("alice", "alice-password")
    assert fx.verifier.verifications == 2


async def test_a_changed_password_misses_the_cache_at_once(fx: Fixture) -> None:
    assert await fx.verifier.verify("alice", "alice-password")
    await fx.set("alice", "new-alice-password")  # another process changed it: no forget()
    assert await fx.verifier.verify("alice", "alice-password") is False
    assert await fx.verifier.verify("alice", "new-alice-password") is True


async def test_a_removed_account_misses_the_cache_at_once(fx: Fixture) -> None:
    assert await fx.verifier.verify("alice", "alice-password")
    del fx.stored["alice"]
    assert await fx.verifier.verify("alice", "alice-password") is False
    await fx.set("alice", "alice-password")  # re-created with the same password: new salt
    before = fx.verifier.verifications
    assert await fx.verifier.verify("alice", "alice-password") is True
    assert fx.verifier.verifications == before + 1


async def test_an_unknown_name_costs_a_decoy_verification(fx: Fixture) -> None:
    calls: list[str] = []
    original = fx.hashing.verify

    async def counting(stored: str, password: str) -> bool:
        calls.append(stored)
        return await original(stored, password)

    fx.hashing.verify = counting  # type: ignore[method-assign]
    assert await fx.verifier.verify("mallory", "alice-password") is False
    assert len(calls) == 1 and calls[0] != fx.stored["alice"]


async def test_concurrent_checks_of_one_credential_share_one_verification(fx: Fixture) -> None:
    results = await asyncio.gather(*(fx.verifier.verify("alice", "alice-password")
                                     for _ in range(8)))
    assert results == [True] * 8
    assert fx.verifier.verifications == 1


async def test_the_cache_holds_at_most_max_entries(fx: Fixture) -> None:
    for name in ["a1", "a2", "a3", "a4"]:
        await fx.set(name, f"{name}-password")
        assert await fx.verifier.verify(name, f"{name}-password")
    assert fx.verifier.verifications == 4
    assert await fx.verifier.verify("a1", "a1-password")  # the oldest was dropped
    assert fx.verifier.verifications == 5
    assert await fx.verifier.verify("a4", "a4-password")
    assert fx.verifier.verifications == 5


async def test_forget_drops_the_entry(fx: Fixture) -> None:
    assert await fx.verifier.verify("alice", "alice-password")
    fx.verifier.forget("alice")
    assert await fx.verifier.verify("alice", "alice-password")
    assert fx.verifier.verifications == 2


async def test_a_zero_ttl_caches_nothing() -> None:
    hashing = cheap_hashing()
    try:
        fixture = Fixture(hashing, ttl=0.0)
        await fixture.set("alice", "alice-password")
        for _ in range(3):
            assert await fixture.verifier.verify("alice", "alice-password")
        assert fixture.verifier.verifications == 3
    finally:
        hashing.close()
