"""Accounts through the in-process backend, on a real PostgreSQL schema: stored as argon2
hashes in the durable-state table, refused clearly, durable across a restart, and a change
effective at the next check."""

from __future__ import annotations

import asyncio

import pytest

from contacts_cli.accounts.store import account_key
from contacts_cli.backends.errors import Conflict, Invalid, NotFound
from contacts_cli.backends.local import LocalBackend
from contacts_cli.service.settings import Settings
from tests.accounts.conftest import PASSWORD, cheap_hashing
from tests.conftest import EngineFactory


async def test_add_stores_only_an_argon2id_hash(backend: LocalBackend) -> None:
    account = await backend.add_account("alice", PASSWORD)
    assert set(account) == {"name", "created_at", "password_changed_at"}
    assert account["name"] == "alice"
    stored = await backend.engine.get_state(account_key("alice"))
    assert stored is not None and stored.revision == 1
    assert stored.value["password_hash"].startswith("$argon2id$")
    assert PASSWORD not in str(stored.value)
    assert await backend.verify_password("alice", PASSWORD) is True
    assert await backend.verify_password("alice", PASSWORD + "x") is False
    assert await backend.verify_password("bob", PASSWORD) is False


async def test_refusals_name_what_was_wrong(backend: LocalBackend) -> None:
    await backend.add_account("alice", PASSWORD)
    with pytest.raises(Conflict, match="account 'alice' already exists"):
        await backend.add_account("alice", "another password")
    with pytest.raises(NotFound, match="no account 'bob'"):
        await backend.set_password("bob", PASSWORD)
    with pytest.raises(NotFound, match="no account 'bob'"):
        await backend.remove_account("bob")
    with pytest.raises(Invalid) as info:
        await backend.add_account("bad/name", PASSWORD)
    assert info.value.errors[0][0] == "user_id"
    with pytest.raises(Invalid) as info:
        await backend.add_account("carol", "short")
    assert info.value.errors[0][0] == "password"
    with pytest.raises(NotFound):  # nothing half-written by the refused add
        await backend.remove_account("carol")


async def test_passwd_and_rm_take_effect_at_the_next_check(backend: LocalBackend) -> None:
    await backend.add_account("alice", PASSWORD)
    assert await backend.verify_password("alice", PASSWORD)  # now cached
    changed = await backend.set_password("alice", "a new password")
    assert changed["password_changed_at"] >= changed["created_at"]
    assert await backend.verify_password("alice", PASSWORD) is False
    assert await backend.verify_password("alice", "a new password") is True
    removed = await backend.remove_account("alice")
    assert removed["name"] == "alice"
    assert await backend.verify_password("alice", "a new password") is False
    assert await backend.engine.get_state(account_key("alice")) is None


async def test_an_account_survives_a_restart(settings: Settings,
                                             engine_factory: EngineFactory) -> None:
    engine = await engine_factory()
    first = await LocalBackend.open(settings, engine=engine, hashing=cheap_hashing())
    try:
        await first.add_account("alice", PASSWORD)
        await first.add_account("bob", PASSWORD)
        await first.set_password("bob", "bob's new password")
    finally:
        await first.close()
    second = await LocalBackend.open(settings, engine=engine, hashing=cheap_hashing())
    try:
        assert await second.verify_password("alice", PASSWORD) is True
        assert await second.verify_password("bob", PASSWORD) is False
        assert await second.verify_password("bob", "bob's new password") is True
        with pytest.raises(Conflict):
            await second.add_account("alice", PASSWORD)
    finally:
        await second.close()


async def test_an_account_actor_that_passivated_comes_back(settings: Settings,
                                                           engine_factory: EngineFactory) -> None:
    engine = await engine_factory()
    quick = await LocalBackend.open(settings.with_(shutdown_after=0.05), engine=engine,
                                    hashing=cheap_hashing())
    try:
        await quick.add_account("alice", PASSWORD)
        for _ in range(200):
            if quick.runtime_metrics()["passivations"] >= 1:
                break
            await asyncio.sleep(0.05)
        assert quick.runtime_metrics()["passivations"] >= 1
        assert await quick.verify_password("alice", PASSWORD) is True
        await quick.set_password("alice", "after passivation")
        assert await quick.verify_password("alice", "after passivation") is True
    finally:
        await quick.close()
