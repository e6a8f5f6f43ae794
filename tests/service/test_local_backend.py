"""LocalBackend and the user actors on a real PostgreSQL: journal layout, snapshots, recovery,
passivation, chunked imports and the errors the CLI maps to exit codes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from contacts_cli.backend import Conflict, Invalid, NotFound, TimedOut
from contacts_cli.local import LocalBackend
from contacts_cli.settings import Settings
from persistence.postgres import PostgresEngine
from tests.conftest import EngineFactory


async def rows_of(items: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for item in items:
        yield item


async def run_import(backend: LocalBackend, user: str, items: list[dict[str, Any]],
                     **options: Any) -> list[dict[str, Any]]:
    return [o async for o in backend.import_rows(user, rows_of(items), **options)]


@pytest.fixture
async def engine(engine_factory: EngineFactory) -> PostgresEngine:
    return await engine_factory()


async def test_journal_is_namespaced_per_user(backend: LocalBackend) -> None:
    await backend.create("alice", {"name": "A"})
    await backend.create("-dash.start", {"name": "B"})
    ids = await backend.engine.persistence_ids()
    assert ids == ["contacts-user/-dash.start", "contacts-user/alice"]
    events = [e async for e in backend.engine.replay("contacts-user/alice")]
    assert [e.type for e in events] == ["ContactCreated"]
    assert events[0].payload["fields"]["name"] == "A"


async def test_errors_are_backend_errors(backend: LocalBackend) -> None:
    with pytest.raises(Invalid) as invalid:
        await backend.create("alice", {"emails": ["nope"]})
    assert {f for f, _ in invalid.value.errors} == {"name", "emails[0]"}
    with pytest.raises(NotFound):
        await backend.get("alice", "missing")
    contact = await backend.create("alice", {"name": "A"})
    with pytest.raises(Conflict):
        await backend.update("alice", contact["id"], {"notes": "x"}, expected_version=5)
    with pytest.raises(Invalid):
        await backend.get("not a user", "x")
    unchanged = await backend.update("alice", contact["id"], {"name": "A"})
    assert unchanged["version"] == 1  # a no-op merge writes nothing


async def test_import_is_one_journal_write_per_chunk(backend: LocalBackend) -> None:
    before = backend.runtime_metrics()
    outcomes = await run_import(backend, "bulk", [{"name": f"P{i}"} for i in range(2500)],
                                chunk_size=1000)
    after = backend.runtime_metrics()
    assert [o["row"] for o in outcomes] == list(range(1, 2501))
    assert {o["outcome"] for o in outcomes} == {"created"}
    assert after["persist_seconds_count"] - before["persist_seconds_count"] == 3
    assert after["persists"] - before["persists"] == 2500
    assert await backend.user_count("bulk") == 2500


async def test_snapshot_once_per_write_and_recovery_from_it(
    settings: Settings, engine: PostgresEngine
) -> None:
    backend = await LocalBackend.open(settings, engine=engine)
    await run_import(backend, "big", [{"name": f"P{i:04d}"} for i in range(1200)],
                     chunk_size=1000)
    snapshot = await engine.load_snapshot("contacts-user/big")
    assert snapshot is not None and snapshot.sequence_nr == 1000  # not 500: one per write
    for i in range(310):
        await backend.create("big", {"name": f"Q{i:03d}"}, idempotency_key=f"q{i}")
    snapshot = await engine.load_snapshot("contacts-user/big")
    assert snapshot is not None and snapshot.sequence_nr == 1500
    expected = await backend.list("big", limit=1000)
    await backend.close()

    restarted = await LocalBackend.open(settings, engine=engine)
    try:
        before = restarted.runtime_metrics()
        assert await restarted.list("big", limit=1000) == expected
        after = restarted.runtime_metrics()
        assert after["replays"] - before["replays"] == 1
        assert after["events_replayed"] - before["events_replayed"] == 10  # 1501..1510
        again = await restarted.create("big", {"name": "Q005"}, idempotency_key="q5")
        assert again["name"] == "Q005"
        assert await restarted.user_count("big") == 1510
    finally:
        await restarted.close()


async def test_idle_user_actor_passivates_and_comes_back(
    settings: Settings, engine: PostgresEngine
) -> None:
    backend = await LocalBackend.open(settings.with_(shutdown_after=0.1), engine=engine)
    try:
        contact = await backend.create("sleepy", {"name": "Zzz"})
        for _ in range(200):
            if (await backend.stats())["live_users"] == 0:
                break
            await asyncio.sleep(0.05)
        assert (await backend.stats())["live_users"] == 0
        assert backend.runtime_metrics()["passivations"] >= 1
        recoveries = (await backend.stats())["recoveries"]
        assert await backend.get("sleepy", contact["id"]) == contact
        assert (await backend.stats())["recoveries"] == recoveries + 1
    finally:
        await backend.close()


async def test_an_actor_that_does_not_answer_in_time_is_a_timeout(
    settings: Settings, engine: PostgresEngine
) -> None:
    backend = await LocalBackend.open(settings.with_(import_chunk_timeout=0.001),
                                      engine=engine)
    try:
        with pytest.raises(TimedOut):
            await run_import(backend, "slow", [{"name": f"P{i}"} for i in range(3000)],
                             chunk_size=3000)
    finally:
        await backend.close()


async def test_a_large_user_snapshots_every_tenth_of_its_contacts(backend: LocalBackend) -> None:
    engine = backend.engine
    await run_import(backend, "large", [{"name": f"L{i}"} for i in range(6000)], chunk_size=1000)
    snapshot = await engine.load_snapshot("contacts-user/large")
    assert snapshot is not None and snapshot.sequence_nr == 6000
    for i in range(665):  # not 500 events later: the interval grew to len(contacts) // 10
        await backend.create("large", {"name": f"M{i}"})
    snapshot = await engine.load_snapshot("contacts-user/large")
    assert snapshot is not None and snapshot.sequence_nr == 6000
    await backend.create("large", {"name": "M665"})  # 6666 - 6000 == 6666 // 10
    snapshot = await engine.load_snapshot("contacts-user/large")
    assert snapshot is not None and snapshot.sequence_nr == 6666
