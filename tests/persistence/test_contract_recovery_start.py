"""The engine contract's ``recovery_start``, on every engine and on the base class's default.

Each engine's answer is compared with the one-by-one path it replaces (highest, then the
latest snapshot at or below it, then a replay page after it: the base class's default, run
on the same engine). The PostgreSQL engine answers concurrent callers with shared queries
(``persistence/postgres/recovery_reads.py``); the cases at the end check that sharing:
callers that give up or a query that fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from psycopg import sql

from actors.recovery import recover
from persistence import (
    Engine,
    InMemoryEngine,
    InvalidArgument,
    JournalIntegrityError,
    NewEvent,
    PersistenceError,
    RecoveryStart,
    SchemaError,
    Snapshot,
    StorageUnavailable,
    StoredEvent,
)
from persistence.postgres import PostgresEngine
from tests.conftest import EngineFactory, private_embedded
from tests.persistence.conftest import server_url


class DefaultRecoveryEngine(InMemoryEngine):
    """The in-memory engine starting recoveries with the base class's default, so that the
    default is held to the same contract as every engine's own."""

    recovery_start = Engine.recovery_start


@pytest.fixture(params=["memory", "default", "postgres", "embedded"])
async def engine(
    request: pytest.FixtureRequest, engine_factory: EngineFactory
) -> AsyncIterator[Engine]:
    if request.param in ("memory", "default"):
        kind = InMemoryEngine if request.param == "memory" else DefaultRecoveryEngine
        async with kind() as memory:
            yield memory
        return
    yield await engine_factory(server_url(request))


@pytest.fixture(params=["postgres", "embedded"])
async def pg(request: pytest.FixtureRequest, engine_factory: EngineFactory) -> PostgresEngine:
    return await engine_factory(server_url(request))


async def fill(engine: Engine, pid: str, count: int) -> None:
    start = await engine.highest_sequence_nr(pid)
    events = [NewEvent("Noted", {"n": start + i}, tags=frozenset({"t"}) if i % 2 else frozenset())
              for i in range(1, count + 1)]
    await engine.append(pid, events, start)


async def one_by_one(engine: Engine, pid: str, max_count: int) -> RecoveryStart:
    """What the engine's own calls give, one after the other (the base class's default)."""
    return await Engine.recovery_start(engine, pid, max_count)


def same(actual: RecoveryStart, expected: RecoveryStart) -> None:
    assert actual.persistence_id == expected.persistence_id
    assert actual.highest_sequence_nr == expected.highest_sequence_nr
    assert actual.snapshot == expected.snapshot
    assert list(actual.events) == list(expected.events)


async def shapes(engine: Engine) -> list[str]:
    """Journals of every shape a recovery meets; returns their ids."""
    await fill(engine, "plain", 7)
    await fill(engine, "snap-mid", 9)
    await engine.save_snapshot("snap-mid", 4, {"at": 4})
    await engine.save_snapshot("snap-mid", 2, {"at": 2})
    await fill(engine, "snap-end", 3)
    await engine.save_snapshot("snap-end", 3, {"at": 3})
    await fill(engine, "snap-beyond", 5)
    await engine.save_snapshot("snap-beyond", 3, {"at": 3})
    await engine.save_snapshot("snap-beyond", 50, {"at": 50})
    await fill(engine, "compacted", 6)
    await engine.save_snapshot("compacted", 4, {"at": 4, "nested": [1, {"x": None}]})
    await engine.delete_events_to("compacted", 4)
    await engine.save_snapshot("only-snapshot", 0, {"at": 0})
    return ["plain", "snap-mid", "snap-end", "snap-beyond", "compacted", "only-snapshot", "none"]


@pytest.mark.parametrize("max_count", [1, 2, 3, 500])
async def test_the_same_as_the_one_by_one_path(engine: Engine, max_count: int) -> None:
    for pid in await shapes(engine):
        same(await engine.recovery_start(pid, max_count), await one_by_one(engine, pid, max_count))


async def test_each_shape_starts_where_recovery_must(engine: Engine) -> None:
    starts = {pid: await engine.recovery_start(pid, 500) for pid in await shapes(engine)}
    summary = {
        pid: (
            s.highest_sequence_nr,
            s.snapshot.sequence_nr if s.snapshot else None,
            [e.sequence_nr for e in s.events],
        )
        for pid, s in starts.items()
    }
    assert summary == {
        "plain": (7, None, [1, 2, 3, 4, 5, 6, 7]),
        "snap-mid": (9, 4, [5, 6, 7, 8, 9]),
        "snap-end": (3, 3, []),
        "snap-beyond": (5, 3, [4, 5]),  # the snapshot at 50 is beyond the journal: ignored
        "compacted": (6, 4, [5, 6]),
        "only-snapshot": (0, 0, []),
        "none": (0, None, []),
    }
    snapshot = starts["compacted"].snapshot
    assert snapshot is not None and snapshot.payload == {"at": 4, "nested": [1, {"x": None}]}
    assert snapshot.persistence_id == "compacted" and starts["compacted"].after_sequence_nr == 4
    assert [e.payload for e in starts["snap-mid"].events] == [{"n": n} for n in range(5, 10)]
    assert [e.tags for e in starts["plain"].events][:2] == [frozenset({"t"}), frozenset()]


async def test_a_large_snapshot(engine: Engine) -> None:
    await fill(engine, "p", 3)
    payload = {"contacts": [{"id": i, "name": f"name {i}", "key": f"{i * 7919 % 100_003:x}"}
                            for i in range(40_000)]}
    await engine.save_snapshot("p", 2, payload)
    start = await engine.recovery_start("p", 10)
    assert start.snapshot is not None and start.snapshot.payload == payload
    same(start, await one_by_one(engine, "p", 10))


async def test_a_page_holds_at_most_max_count_events(engine: Engine) -> None:
    await fill(engine, "long", 2_600)
    start = await engine.recovery_start("long", 2_500)
    assert [e.sequence_nr for e in start.events] == list(range(1, 2_501))
    assert [e.sequence_nr for e in (await engine.recovery_start("long", 1)).events] == [1]
    with pytest.raises(InvalidArgument, match="max_count"):
        await engine.recovery_start("long", 0)


async def test_events_after_the_highest_read_are_not_returned(engine: Engine) -> None:
    await fill(engine, "p", 3)
    await engine.save_snapshot("p", 5, {"at": 5})  # beyond: ignored, even once events reach it
    start = await engine.recovery_start("p", 10)
    assert (start.highest_sequence_nr, start.snapshot) == (3, None)
    await fill(engine, "p", 3)
    start = await engine.recovery_start("p", 10)
    assert start.snapshot is not None and start.snapshot.sequence_nr == 5
    assert [e.sequence_nr for e in start.events] == [6]


async def test_a_gap_shows_and_recovery_refuses_it(engine: Engine) -> None:
    await fill(engine, "holed", 5)
    await engine.delete_events_to("holed", 2)  # no snapshot covers 1..2
    start = await engine.recovery_start("holed", 10)
    assert (start.after_sequence_nr, [e.sequence_nr for e in start.events]) == (0, [3, 4, 5])
    await fill(engine, "emptied", 3)
    await engine.delete_events_to("emptied", 3)
    emptied = await engine.recovery_start("emptied", 10)
    assert (emptied.highest_sequence_nr, list(emptied.events)) == (3, [])

    async def count(state: int, event: StoredEvent) -> int:
        return state + 1

    for pid, message in [("holed", "expected event #1 .*found #3"), ("emptied", "highest")]:
        with pytest.raises(JournalIntegrityError, match=message):
            await recover(engine, pid, initial=lambda: 0, restore=lambda p: 0, apply=count,
                          page_size=2)


async def test_recovery_through_it_pages_the_rest_with_replay(engine: Engine) -> None:
    await fill(engine, "p", 23)
    await engine.save_snapshot("p", 3, {"at": 3})

    async def collect(state: list[int], event: StoredEvent) -> list[int]:
        return [*state, event.payload["n"]]

    state, report = await recover(
        engine, "p", initial=list, restore=lambda s: [s.payload["at"]], apply=collect, page_size=4
    )
    assert state == [3, *range(4, 24)]
    assert (report.snapshot_sequence_nr, report.events_replayed, report.sequence_nr) == (3, 20, 23)


async def test_many_concurrent_callers_each_get_their_own(engine: Engine) -> None:
    pids = [f"user-{i}" for i in range(150)]
    for i, pid in enumerate(pids):
        if i % 5:
            await fill(engine, pid, i % 7 + 1)
        if i % 3 == 0:
            await engine.save_snapshot(pid, i % 4, {"i": i})
    asked = [*pids, *pids[:20]]  # the same id twice in flight, too
    starts = await asyncio.gather(*(engine.recovery_start(pid, 1 + i % 3)
                                    for i, pid in enumerate(asked)))
    for i, (pid, start) in enumerate(zip(asked, starts, strict=True)):
        same(start, await one_by_one(engine, pid, 1 + i % 3))


async def test_a_caller_cancelled_mid_batch_leaves_the_others_whole(engine: Engine) -> None:
    pids = [f"user-{i}" for i in range(40)]
    for pid in pids:
        await fill(engine, pid, 3)
    tasks = [asyncio.ensure_future(engine.recovery_start(pid, 10)) for pid in pids]
    for _ in range(3):  # the batch is formed and its query sent
        await asyncio.sleep(0)
    tasks[7].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for i, (pid, result) in enumerate(zip(pids, results, strict=True)):
        if i == 7 and isinstance(result, asyncio.CancelledError):
            continue
        assert isinstance(result, RecoveryStart)
        same(result, await one_by_one(engine, pid, 10))
    same(await engine.recovery_start(pids[7], 10), await one_by_one(engine, pids[7], 10))


# -- the PostgreSQL engine's shared queries ----------------------------------------------------


async def test_concurrent_callers_share_queries(pg: PostgresEngine) -> None:
    pids = [f"user-{i}" for i in range(300)]
    await asyncio.gather(*(fill(pg, pid, 4) for pid in pids))
    before = pg.recovery_reads.batches_read
    starts = await asyncio.gather(*(pg.recovery_start(pid, 500) for pid in pids))
    assert [len(s.events) for s in starts] == [4] * 300
    assert pg.recovery_reads.batches_read - before <= 10  # not 300 (nor 900 round trips)


async def test_a_cancelled_caller_is_left_out_of_its_batch(pg: PostgresEngine) -> None:
    await fill(pg, "p", 2)
    tasks = [asyncio.ensure_future(pg.recovery_start("p", 10)) for _ in range(5)]
    await asyncio.sleep(0)  # queued, the batch not formed yet
    tasks[0].cancel()
    await asyncio.sleep(0)
    tasks[1].cancel()  # the batch formed: cancelled while its query runs
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results[:2])
    assert all(isinstance(r, RecoveryStart) and len(r.events) == 2 for r in results[2:])


async def test_a_failed_query_fails_every_caller_of_its_batch(pg: PostgresEngine) -> None:
    pids = [f"user-{i}" for i in range(30)]
    for pid in pids:
        await fill(pg, pid, 2)
    async with pg._connections("drop the snapshot table") as conn:
        await conn.execute(sql.SQL("DROP TABLE {}").format(pg.names.snapshot))
    results = await asyncio.gather(*(pg.recovery_start(pid, 10) for pid in pids),
                                   return_exceptions=True)
    assert all(isinstance(r, SchemaError) for r in results), results
    assert all(isinstance(r, PersistenceError) and repr(pid) in str(r)
               for pid, r in zip(pids, results, strict=True))
    assert await pg.highest_sequence_nr(pids[0]) == 2  # the engine still answers


async def test_a_closed_engine_refuses_and_finishes_what_it_took(pg: PostgresEngine) -> None:
    await fill(pg, "p", 2)
    pending = asyncio.ensure_future(pg.recovery_start("p", 10))
    await asyncio.sleep(0)
    await pg.close()
    assert len((await pending).events) == 2
    with pytest.raises(PersistenceError, match="closed"):
        await pg.recovery_start("p", 10)


async def test_a_lost_server_fails_every_caller_as_storage_unavailable(
    engine_factory: EngineFactory,
) -> None:
    with private_embedded("recovery-reads") as server:
        pg = await engine_factory(server.url, connect_timeout=1.0)
        await fill(pg, "p", 2)
        server.stop_server()
        results = await asyncio.gather(*(pg.recovery_start("p", 10) for _ in range(5)),
                                       return_exceptions=True)
        assert all(isinstance(r, StorageUnavailable) and "'p'" in str(r) for r in results), (
            results
        )


async def test_a_snapshot_too_large_to_share_is_loaded_alone(pg: PostgresEngine) -> None:
    pg.recovery_reads.max_shared_snapshot_bytes = 100
    pids = [f"user-{i}" for i in range(20)]
    for i, pid in enumerate(pids):
        await fill(pg, pid, 4)
        await pg.save_snapshot(pid, 2, {"small": i} if i % 2 else {"large": "x" * 500, "i": i})
    starts = await asyncio.gather(*(pg.recovery_start(pid, 10) for pid in pids))
    for pid, start in zip(pids, starts, strict=True):
        same(start, await one_by_one(pg, pid, 10))


async def test_a_large_snapshot_deleted_before_its_load_starts_over(pg: PostgresEngine) -> None:
    pg.recovery_reads.max_shared_snapshot_bytes = 100
    await fill(pg, "p", 6)
    await pg.save_snapshot("p", 2, {"at": 2})
    await pg.save_snapshot("p", 4, {"at": 4, "large": "x" * 500})
    load = pg.load_snapshot

    async def compacted_meanwhile(persistence_id: str, max_sequence_nr: int) -> Snapshot | None:
        await pg.delete_snapshots(persistence_id, 4, 4)
        return await load(persistence_id, max_sequence_nr)

    pg.recovery_reads._load_snapshot = compacted_meanwhile
    start = await pg.recovery_start("p", 10)
    assert start.snapshot is not None and start.snapshot.payload == {"at": 2}
    assert [e.sequence_nr for e in start.events] == [3, 4, 5, 6]
