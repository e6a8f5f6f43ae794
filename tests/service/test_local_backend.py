"""LocalBackend and the user actors on a real PostgreSQL: journal layout, snapshots, recovery,
passivation, chunked imports and the errors the CLI maps to exit codes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from contacts_cli.backends.base import Conflict, Invalid, NotFound, TimedOut
from contacts_cli.backends.local import LocalBackend
from contacts_cli.service.settings import Settings
from persistence.postgres import PostgresEngine
from tests.conftest import EngineFactory


async def rows_of(items: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for item in items:
        yield item


async def run_import(backend: LocalBackend, user: str, items: list[dict[str, Any]],
                     **options: Any) -> list[dict[str, Any]]:
    return [o async for o in backend.import_rows(user, rows_of(items), **options)]


async def snapshot_at(engine: PostgresEngine, pid: str, sequence_nr: int) -> int | None:
    """The latest snapshot's sequence number once the background writer reached
    ``sequence_nr`` (or whatever it is after waiting a bounded while)."""
    for _ in range(400):
        snapshot = await engine.load_snapshot(pid)
        if snapshot is not None and snapshot.sequence_nr >= sequence_nr:
            return snapshot.sequence_nr
        await asyncio.sleep(0.025)
    snapshot = await engine.load_snapshot(pid)
    return None if snapshot is None else snapshot.sequence_nr


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
    backend = await LocalBackend.open(settings.with_(snapshot_every=100), engine=engine)
    await run_import(backend, "big", [{"name": f"P{i:04d}"} for i in range(250)],
                     chunk_size=200)
    assert await snapshot_at(engine, "contacts-user/big", 200) == 200  # not 100: per write
    await backend.system.wait_for_snapshots()
    # The interval is now twice the last snapshot's 200 contacts: 250 + 350 creates reach 600.
    for i in range(360):
        await backend.create("big", {"name": f"Q{i:03d}"}, idempotency_key=f"q{i}")
    assert await snapshot_at(engine, "contacts-user/big", 600) == 600
    expected = await backend.list("big", limit=1000)
    await backend.close()  # 10 events behind: fewer than snapshot_every, no closing snapshot
    assert (await engine.load_snapshot("contacts-user/big")).sequence_nr == 600  # type: ignore[union-attr]

    restarted = await LocalBackend.open(settings, engine=engine)
    try:
        before = restarted.runtime_metrics()
        assert await restarted.list("big", limit=1000) == expected
        after = restarted.runtime_metrics()
        assert after["replays"] - before["replays"] == 1
        assert after["events_replayed"] - before["events_replayed"] == 10  # 601..610
        again = await restarted.create("big", {"name": "Q005"}, idempotency_key="q5")
        assert again["name"] == "Q005"
        assert await restarted.user_count("big") == 610
    finally:
        await restarted.close()


async def test_snapshot_interval_grows_and_close_snapshots_a_user_far_behind(
    settings: Settings, engine: PostgresEngine
) -> None:
    pid = "contacts-user/grower"
    backend = await LocalBackend.open(settings.with_(snapshot_every=100), engine=engine)
    try:
        for chunk in range(4):  # writes end at 300, 600, 900, 1000
            size = 300 if chunk < 3 else 100
            await run_import(backend, "grower", [{"name": f"G{chunk}-{i}"} for i in range(size)],
                             chunk_size=size)
            await backend.system.wait_for_snapshots()
        # at 300 (>= 100), not at 600 (< 2 x 300 since), at 900, not at 1000 (< 2 x 900 since)
        assert (await engine.load_snapshot(pid)).sequence_nr == 900  # type: ignore[union-attr]
        expected = await backend.list("grower", limit=1000)
    finally:
        await backend.close()
    assert (await engine.load_snapshot(pid)).sequence_nr == 1000  # type: ignore[union-attr]

    restarted = await LocalBackend.open(settings, engine=engine)
    try:
        before = restarted.runtime_metrics()
        assert await restarted.list("grower", limit=1000) == expected
        assert restarted.runtime_metrics()["events_replayed"] == before["events_replayed"]
    finally:
        await restarted.close()


@pytest.mark.parametrize("deferral", [None, 300])
async def test_a_streaming_import_snapshots_at_its_last_chunk(
    settings: Settings, engine: PostgresEngine, monkeypatch: pytest.MonkeyPatch,
    deferral: int | None,
) -> None:
    from contacts_cli.service import actor

    if deferral is not None:
        monkeypatch.setattr(actor, "IMPORT_SNAPSHOT_DEFERRAL", deferral)
    pid = "contacts-user/streamer"
    backend = await LocalBackend.open(settings.with_(snapshot_every=100), engine=engine)
    try:
        seen = []
        for n in range(3):  # 200 events per chunk; the first two say more follow
            rows = [{"name": f"S{n}-{i}"} for i in range(200)]
            await backend.import_chunk("streamer", rows, f"k{n}", more=n < 2)
            await backend.system.wait_for_snapshots()
            snapshot = await engine.load_snapshot(pid)
            seen.append(snapshot.sequence_nr if snapshot is not None else None)
        # deferred while the import streams; taken at its last chunk, or once the journal
        # is the deferral limit past the last snapshot (then 600 is not due: 2 x 400)
        assert seen == ([None, None, 600] if deferral is None else [None, 400, 400])
    finally:
        await backend.close()
    assert (await engine.load_snapshot(pid)).sequence_nr == 600  # type: ignore[union-attr]


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
