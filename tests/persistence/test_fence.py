"""The fence in the engine contract: ``append`` and ``delete_events_to`` with ``fence=lease``
write only while that lease is held, on every engine that judges fences (the in-memory
engine with a lease table, PostgreSQL on a server and embedded).

For PostgreSQL the group-commit writer puts fenced and unfenced requests in one statement:
a stale member is refused (``LeaseLost``) while the others of its batch commit, and a
takeover that meets a fenced write in flight waits for it to commit.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from persistence import (
    ConcurrencyConflict,
    Engine,
    InMemoryEngine,
    InvalidArgument,
    LeaseLost,
    NewEvent,
)
from persistence.embedded import EmbeddedPostgres
from persistence.placement import HeldElsewhere, Lease, PlacementStore
from persistence.placement.memory import InMemoryLeases
from persistence.postgres import PostgresEngine
from tests.conftest import EngineFactory
from tests.persistence.test_placement import wait_for

EVENT = [NewEvent("noted", {"n": 1}, tags=frozenset({"fenced-tag"}))]


class Leases:
    """One lease table and the engine whose writes it fences: in memory or PostgreSQL."""

    def __init__(
        self, engine: Engine, memory: InMemoryLeases | None, store: PlacementStore | None
    ) -> None:
        self.engine = engine
        self.memory = memory
        self.store = store

    async def register(self, address: str) -> str:
        if self.memory is not None:
            return self.memory.register(address, ttl=60)
        assert self.store is not None
        return (await self.store.register(address, ttl=60)).instance_id

    async def acquire(self, key: str, instance_id: str) -> Lease:
        if self.memory is not None:
            got = self.memory.acquire(key, instance_id)
        else:
            assert self.store is not None
            got = await self.store.acquire(key, instance_id)
        assert isinstance(got, Lease), got
        return got

    async def elsewhere(self, key: str, instance_id: str) -> HeldElsewhere:
        if self.memory is not None:
            got = self.memory.acquire(key, instance_id)
        else:
            assert self.store is not None
            got = await self.store.acquire(key, instance_id)
        assert isinstance(got, HeldElsewhere), got
        return got

    async def expire(self, instance_id: str) -> None:
        """Judge the instance expired now (as its TTL running out would)."""
        if self.memory is not None:
            self.memory.expire(instance_id)
            return
        assert self.store is not None and isinstance(self.engine, PostgresEngine)
        async with await psycopg.AsyncConnection.connect(
            self.engine.config.url, autocommit=True
        ) as conn:
            await conn.execute(
                sql.SQL("UPDATE {} SET expires_at = now() - interval '1 second' WHERE id = %s")
                .format(self.store.names.instance),
                [instance_id],
            )

    async def release(self, lease: Lease) -> None:
        if self.memory is not None:
            assert self.memory.release(lease)
        else:
            assert self.store is not None
            assert await self.store.release(lease)


@pytest.fixture(params=["memory", "postgres", "embedded"])
async def leases(
    request: pytest.FixtureRequest, engine_factory: EngineFactory
) -> AsyncIterator[Leases]:
    if request.param == "memory":
        table = InMemoryLeases()
        async with InMemoryEngine(leases=table) as memory:
            yield Leases(memory, table, None)
        return
    if request.param == "postgres":
        url = os.environ.get("TEST_DATABASE_URL", "").strip()
        if not url:
            pytest.skip("TEST_DATABASE_URL is not set")
    else:
        embedded: EmbeddedPostgres = request.getfixturevalue("embedded_postgres")
        url = embedded.url
    # One batch in flight: requests queued in one loop turn form exactly one batch.
    engine = await engine_factory(url, max_batches_in_flight=1)
    async with PlacementStore(engine.config, application_name="fence-test") as store:
        yield Leases(engine, None, store)


async def highest_and_events(engine: Engine, pid: str) -> tuple[int, list[int]]:
    events = [e.sequence_nr async for e in engine.replay(pid)]
    return await engine.highest_sequence_nr(pid), events


async def test_one_batch_writes_fresh_and_unfenced_requests_and_refuses_stale_ones(
    leases: Leases,
) -> None:
    engine = leases.engine
    a, b = await leases.register("a:1"), await leases.register("b:1")
    fresh = await leases.acquire("fresh", a)
    stale = await leases.acquire("stale", b)
    also_stale = await leases.acquire("stale-wrong-seq", b)
    conflicting = await leases.acquire("fresh-wrong-seq", a)
    await leases.expire(b)
    await leases.acquire("stale", a)  # taken over; "stale-wrong-seq" is merely expired
    before = engine.writer.batches_written if isinstance(engine, PostgresEngine) else 0

    results = await asyncio.gather(
        engine.append("fresh", EVENT, 0, fence=fresh),
        engine.append("stale", EVENT, 0, fence=stale),
        engine.append("unfenced", EVENT, 0),
        engine.append("stale-wrong-seq", EVENT, 7, fence=also_stale),
        engine.append("fresh-wrong-seq", EVENT, 3, fence=conflicting),
        return_exceptions=True,
    )

    if isinstance(engine, PostgresEngine):
        assert engine.writer.batches_written == before + 1  # one statement for all five
    written, refused, unfenced, refused_first, conflict = results
    assert isinstance(written, list) and [e.sequence_nr for e in written] == [1]
    assert isinstance(unfenced, list) and [e.sequence_nr for e in unfenced] == [1]
    assert isinstance(refused, LeaseLost)
    assert (refused.key, refused.owner, refused.epoch) == ("stale", b, 1)
    assert isinstance(refused_first, LeaseLost)  # the fence is judged before the sequence
    assert isinstance(conflict, ConcurrencyConflict) and conflict.actual_sequence_nr == 0
    for pid, expected in (("fresh", (1, [1])), ("unfenced", (1, [1])), ("stale", (0, []))):
        assert await highest_and_events(engine, pid) == expected
    tagged = [e.persistence_id async for e in engine.events_by_tag("fenced-tag")]
    assert sorted(tagged) == ["fresh", "unfenced"]


async def test_a_stale_fence_writes_nothing_and_the_new_owner_goes_on(leases: Leases) -> None:
    engine = leases.engine
    a, b = await leases.register("a:1"), await leases.register("b:1")
    first = await leases.acquire("user", a)
    await engine.append("user", EVENT, 0, fence=first)

    await leases.release(first)  # released: the old lease is stale
    with pytest.raises(LeaseLost, match="no longer holds its lease at epoch 1"):
        await engine.append("user", EVENT, 1, fence=first)

    second = await leases.acquire("user", a)
    assert second.epoch == 2
    await leases.expire(a)  # expired, not yet taken over: still refused
    with pytest.raises(LeaseLost):
        await engine.append("user", EVENT, 1, fence=second)

    third = await leases.acquire("user", b)  # the takeover
    assert (third.epoch, third.taken_over_from) == (3, a)
    for stale in (first, second):
        with pytest.raises(LeaseLost):
            await engine.append("user", EVENT, 1, fence=stale)
    assert await highest_and_events(engine, "user") == (1, [1])
    stored = await engine.append("user", EVENT, 1, fence=third)
    assert [e.sequence_nr for e in stored] == [2]


async def test_delete_events_to_is_fenced(leases: Leases) -> None:
    engine = leases.engine
    a, b = await leases.register("a:1"), await leases.register("b:1")
    lease = await leases.acquire("user", a)
    await engine.append("user", EVENT * 3, 0, fence=lease)
    await engine.delete_events_to("user", 1, fence=lease)
    assert await highest_and_events(engine, "user") == (3, [2, 3])

    await leases.expire(a)
    successor = await leases.acquire("user", b)
    with pytest.raises(LeaseLost, match="delete for 'user' refused"):
        await engine.delete_events_to("user", 3, fence=lease)
    assert await highest_and_events(engine, "user") == (3, [2, 3])
    await engine.delete_events_to("user", 2, fence=successor)
    assert await highest_and_events(engine, "user") == (3, [3])


async def test_a_fence_for_another_key_is_a_caller_error(leases: Leases) -> None:
    a = await leases.register("a:1")
    other = await leases.acquire("other", a)
    with pytest.raises(InvalidArgument, match="fenced with the lease of 'other'"):
        await leases.engine.append("user", EVENT, 0, fence=other)
    with pytest.raises(InvalidArgument):
        await leases.engine.delete_events_to("user", 1, fence=other)


async def test_a_live_owner_keeps_its_lease(leases: Leases) -> None:
    a, b = await leases.register("a:1"), await leases.register("b:1")
    held = await leases.acquire("user", a)
    elsewhere = await leases.elsewhere("user", b)
    assert (elsewhere.owner, elsewhere.epoch, elsewhere.address) == (a, 1, "a:1")
    assert [e.sequence_nr for e in await leases.engine.append("user", EVENT, 0, fence=held)] == [1]


# -- PostgreSQL: a takeover and a fenced write in flight ------------------------------------


async def _waiting_on_lock(spy: psycopg.AsyncConnection[Any], application_name: str) -> bool:
    cur = await spy.execute(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE application_name = %s AND wait_event_type = 'Lock'",
        [application_name],
    )
    row = await cur.fetchone()
    return row is not None and row[0] > 0


async def test_a_takeover_waits_for_a_fenced_append_in_flight(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory()
    async with (
        PlacementStore(engine.config, application_name="fence-taker") as store,
        await psycopg.AsyncConnection.connect(engine.config.url, autocommit=True) as blocker,
        await psycopg.AsyncConnection.connect(engine.config.url, autocommit=True) as spy,
    ):
        a = await store.register("a:1", ttl=60)
        b = await store.register("b:1", ttl=60)
        lease = await store.acquire("user", a.instance_id)
        assert isinstance(lease, Lease)
        await engine.append("user", EVENT, 0, fence=lease)
        async with blocker.transaction():
            # Hold the journal's `highest` row: the append passes its fence (locking the
            # lease row FOR SHARE), then waits here, in flight, holding that lock.
            await blocker.execute(
                sql.SQL("SELECT highest FROM {} WHERE persistence_id = 'user' FOR UPDATE")
                .format(engine.names.highest)
            )
            append = asyncio.ensure_future(engine.append("user", EVENT, 1, fence=lease))
            await wait_for(
                lambda: _waiting_on_lock(spy, engine.application_name),
                "the fenced append to wait on the journal row",
            )
            await spy.execute(
                sql.SQL("UPDATE {} SET expires_at = now() - interval '1 second' WHERE id = %s")
                .format(store.names.instance),
                [a.instance_id],
            )
            takeover = asyncio.ensure_future(store.acquire("user", b.instance_id))
            await wait_for(
                lambda: _waiting_on_lock(spy, "fence-taker"),
                "the takeover to wait for the fenced append",
            )
            assert not takeover.done() and not append.done()
        stored = await append
        assert [e.sequence_nr for e in stored] == [2]  # it passed its fence before expiry
        taken = await takeover
        assert isinstance(taken, Lease) and (taken.epoch, taken.taken_over_from) == (
            2,
            a.instance_id,
        )
        assert await engine.highest_sequence_nr("user") == 2  # the new owner reads it
        with pytest.raises(LeaseLost):
            await engine.append("user", EVENT, 2, fence=lease)
