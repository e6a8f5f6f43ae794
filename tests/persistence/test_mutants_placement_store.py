"""Guarantees of the placement store (``persistence/placement/store.py`` and
``batched_acquire.py``) that its tests left unpinned (issue 14's mutation run): each test
kills mutants that survived ``test_placement.py`` and ``test_placement_batched.py``. On a
real PostgreSQL; nothing is mocked (the batched path's connections are only counted)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import TupleRow

from persistence.errors import PersistenceError, SchemaError, StorageUnavailable
from persistence.placement import HeldElsewhere, Lease, MembershipLost, PlacementStore
from persistence.placement.batched_acquire import BatchedAcquire
from persistence.placement.model import SELF_FENCE_MARGIN
from persistence.placement.store import local_deadline
from persistence.postgres import PostgresConfig, PostgresEngine
from persistence.postgres.pool import make_pool
from tests.conftest import EngineFactory, drop_schemas, unique_schema
from tests.persistence.conftest import StoreFactory, expire_now


@pytest.fixture
async def engine(engine_factory: EngineFactory) -> PostgresEngine:
    return await engine_factory()


def test_placement_store_local_deadline_keeps_a_fraction_of_the_ttl_in_hand() -> None:
    assert 0 < SELF_FENCE_MARGIN < 1
    for sent, ttl in ((0.0, 10.0), (100.0, 2.0), (7.5, 0.5)):
        kept = local_deadline(sent, ttl) - sent
        assert kept == pytest.approx(ttl * (1 - SELF_FENCE_MARGIN))
        assert local_deadline(sent, 2 * ttl) - sent == pytest.approx(2 * kept)


@pytest.mark.parametrize("ttl", [0.0, -1.0, float("nan")])
async def test_placement_store_refuses_a_registration_that_is_never_live(
    stores: StoreFactory, ttl: float
) -> None:
    store = await stores()
    with pytest.raises(ValueError, match="ttl must be a positive number"):
        await store.register("a:1", ttl=ttl)
    assert (await store.status()).instances == []


@pytest.mark.parametrize("state", ["expired", "draining", "not registered"])
async def test_placement_store_one_key_path_refuses_a_caller_that_may_take_no_user(
    stores: StoreFactory, state: str
) -> None:
    store = await stores()
    me = await store.register("me:1", ttl=60)
    instance_id = me.instance_id
    if state == "expired":
        await expire_now(store, me)
    elif state == "draining":
        assert await store.drain(instance_id)
    else:
        instance_id = "nobody"
    with pytest.raises(MembershipLost) as refused:
        await store.acquire_one("user-1", instance_id)
    assert refused.value.reason == state
    assert sum(i.users for i in (await store.status()).instances) == 0


async def test_placement_store_membership_never_queues_behind_blocked_lease_work(
    engine: PostgresEngine,
) -> None:
    """Registrations and renewals have a pool of their own: with every connection of the
    main pool waiting for a lease row, they still go through at once."""
    async with PlacementStore(
        engine.config, application_name="mutants-test-busy", hold_timeout=30
    ) as store:
        me = await store.register("me:1", ttl=60)
        lease = await store.acquire("user-1", me.instance_id)
        assert isinstance(lease, Lease)
        async with await psycopg.AsyncConnection.connect(engine.config.url) as blocker:
            await blocker.execute(
                sql.SQL("SELECT 1 FROM {} WHERE key = %s FOR UPDATE").format(store.names.lease),
                ["user-1"],
            )
            blocked = [
                asyncio.create_task(store.acquire_one("user-1", me.instance_id)),
                asyncio.create_task(store.acquire_one("user-1", me.instance_id)),
                asyncio.create_task(store.release(lease)),
            ]
            await wait_for_lock_waits(engine, store.application_name, 3)  # the pool's three
            renewal = await store.heartbeat(me.instance_id)
            late = await store.register("late:1", ttl=60)
            assert renewal.valid and late.instance_id
            assert not any(task.done() for task in blocked)
            await blocker.rollback()
        *reacquired, released = await asyncio.gather(*blocked)  # in the order the row lets them
        assert all(isinstance(r, Lease) and r.owner == me.instance_id for r in reacquired)
        assert isinstance(released, bool)


async def wait_for_lock_waits(engine: PostgresEngine, application_name: str, count: int) -> None:
    """Until ``count`` sessions of ``application_name`` wait for a lock (bounded)."""
    deadline = time.monotonic() + 15
    async with await psycopg.AsyncConnection.connect(engine.config.url, autocommit=True) as conn:
        for _ in range(300):
            cur = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = %s AND wait_event_type = 'Lock'",
                [application_name],
            )
            row = await cur.fetchone()
            if row is not None and row[0] >= count:
                return
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    raise AssertionError(f"{count} sessions of {application_name!r} never waited for a lock")


class CountedConnections:
    """The store's connections for acquire batches, counting how many are open at once."""

    def __init__(self, store: PlacementStore) -> None:
        self.store = store
        self.open_now = 0
        self.peak = 0

    @asynccontextmanager
    async def connect(self, action: str) -> AsyncIterator[psycopg.AsyncConnection[TupleRow]]:
        self.open_now += 1
        self.peak = max(self.peak, self.open_now)
        try:
            async with self.store._connection(action) as conn:
                yield conn
        finally:
            self.open_now -= 1


def count_batch_connections(store: PlacementStore, *, max_in_flight: int) -> CountedConnections:
    """Give ``store`` one-key acquire batches, at most ``max_in_flight`` at once, whose
    connections are counted."""
    counted = CountedConnections(store)
    store.batched = BatchedAcquire(
        counted.connect, store._limit_locks, store.names, max_batch_keys=1,
        max_in_flight=max_in_flight,
    )
    return counted


async def test_placement_store_batches_in_flight_never_exceed_the_bound(
    stores: StoreFactory,
) -> None:
    store = await stores()
    me = await store.register("me:1", ttl=60)
    counted = count_batch_connections(store, max_in_flight=2)
    results = await asyncio.gather(*[store.acquire(f"user-{n}", me.instance_id) for n in range(8)])
    assert all(isinstance(r, Lease) and r.epoch == 1 for r in results)
    assert store.batched.batches == 8  # one key per statement ...
    assert counted.peak == 2  # ... at most two at once, and as many as allowed


async def test_placement_store_batches_leave_no_queue_and_log_no_crash(
    stores: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store = await stores()
    me = await store.register("me:1", ttl=60)
    with caplog.at_level(logging.DEBUG, logger="persistence.placement.batched_acquire"):
        results = await asyncio.gather(
            *[store.acquire(f"user-{n}", me.instance_id) for n in range(5)]
        )
        await store.batched.wait_idle()
        for _ in range(5):  # the last batch's done-callback schedules one more look
            await asyncio.sleep(0)
    assert all(isinstance(r, Lease) for r in results)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert store.batched._batches._queues == {}  # no per-instance state outlives its requests


async def test_placement_store_batch_bounds_are_checked_and_one_is_allowed(
    stores: StoreFactory,
) -> None:
    store = await stores()
    me = await store.register("me:1", ttl=60)
    for bounds in ({"max_batch_keys": 0}, {"max_in_flight": 0}):
        with pytest.raises(ValueError, match="must be at least 1"):
            BatchedAcquire(store._connection, store._limit_locks, store.names, **bounds)
    store.batched = BatchedAcquire(
        store._connection, store._limit_locks, store.names, max_batch_keys=2, max_in_flight=1
    )
    results = await asyncio.gather(*[store.acquire(f"user-{n}", me.instance_id) for n in range(5)])
    assert all(isinstance(r, Lease) and r.epoch == 1 for r in results)
    assert (store.batched.batches, store.batched.settled) == (3, 5)


async def test_placement_store_a_cancelled_batch_leaves_the_queued_keys_their_batches(
    stores: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store = await stores()
    me = await store.register("me:1", ttl=60)
    store.batched = BatchedAcquire(
        store._connection, store._limit_locks, store.names, max_batch_keys=1, max_in_flight=1
    )
    with caplog.at_level(logging.DEBUG, logger="persistence.placement.batched_acquire"):
        callers = [
            asyncio.create_task(store.acquire(f"user-{n}", me.instance_id)) for n in range(3)
        ]
        for _ in range(3):  # the first batch has started; the other keys wait behind it
            await asyncio.sleep(0)
        (first_batch,) = store.batched._batches._tasks
        first_batch.cancel()
        await asyncio.wait(callers)
    assert callers[0].cancelled()
    for caller in callers[1:]:
        result = caller.result()
        assert isinstance(result, Lease) and result.epoch == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_placement_store_a_failing_batch_answers_every_caller_and_crashes_nothing(
    engine: PostgresEngine, caplog: pytest.LogCaptureFixture
) -> None:
    config = dataclasses.replace(engine.config, table_prefix="nothing_here_")
    store = PlacementStore(config, application_name="mutants-test-broken")
    await store.start(migrated=True)  # no tables under this prefix
    try:
        with caplog.at_level(logging.DEBUG, logger="persistence.placement.batched_acquire"):
            callers = [asyncio.create_task(store.acquire(f"user-{n}", "x")) for n in range(5)]
            for _ in range(3):  # the batch is in flight
                await asyncio.sleep(0)
            callers[1].cancel()
            await asyncio.wait(callers)
            await store.batched.wait_idle()
            for _ in range(5):
                await asyncio.sleep(0)
    finally:
        await store.close()
    assert callers[1].cancelled()
    for caller in callers[:1] + callers[2:]:
        error = caller.exception()
        assert isinstance(error, SchemaError)
        assert "does not exist" in str(error)  # the server's own words, on one line
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_placement_store_close_leaves_no_connection_and_no_task(
    engine: PostgresEngine,
) -> None:
    name = "mutants-test-closing"
    before = asyncio.all_tasks()
    store = PlacementStore(engine.config, application_name=name)
    await store.start()
    assert {t.get_name() for t in asyncio.all_tasks()} >= {f"{name}-guard"}
    await store.close()
    for _ in range(5):
        await asyncio.sleep(0)
    # neither the guard nor a pool's scheduler and workers outlive close()
    assert {t for t in asyncio.all_tasks() if not t.done()} - before == set()
    deadline = time.monotonic() + 15
    async with await psycopg.AsyncConnection.connect(engine.config.url, autocommit=True) as conn:
        for _ in range(300):
            cur = await conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s",
                [f"{name}%"],
            )
            row = await cur.fetchone()
            if row is not None and row[0] == 0:
                return
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    raise AssertionError("the store's connections outlived close()")


async def test_placement_store_bounds_lock_waits_and_idle_locks_by_its_hold_timeout(
    engine: PostgresEngine,
) -> None:
    async with (
        PlacementStore(engine.config, hold_timeout=0.25) as store,
        store._connection("probe") as conn,
        conn.transaction(),
    ):
        await store._limit_locks(conn)
        cur = await conn.execute(
            "SELECT current_setting('lock_timeout'), "
            "current_setting('idle_in_transaction_session_timeout')"
        )
        assert await cur.fetchone() == ("250ms", "250ms")


async def test_placement_store_prune_keeps_a_week_of_takeovers_by_default(
    engine: PostgresEngine, stores: StoreFactory
) -> None:
    store = await stores()
    async with await psycopg.AsyncConnection.connect(engine.config.url, autocommit=True) as conn:
        for key, age in (("user-recent", "6 days"), ("user-old", "8 days")):
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {} (key, epoch, from_owner, to_owner, at) "
                    "VALUES (%s, 2, 'a', 'b', now() - %s::interval)"
                ).format(store.names.takeover),
                [key, age],
            )
        assert await store.prune() == (0, 1)
        cur = await conn.execute(sql.SQL("SELECT key FROM {}").format(store.names.takeover))
        assert await cur.fetchall() == [("user-recent",)]


async def test_placement_store_one_key_path_that_loses_the_insert_race_finds_the_winner(
    engine: PostgresEngine, stores: StoreFactory
) -> None:
    store = await stores()
    me = await store.register("me:1", ttl=60)
    winner = await store.register("winner:1", ttl=60)
    async with await psycopg.AsyncConnection.connect(engine.config.url) as racer:
        await (
            racer.execute(  # inserted, not yet committed: invisible to the lock, not to the insert
                sql.SQL(
                    "INSERT INTO {} (key, owner, epoch, acquired_at) VALUES (%s, %s, 1, now())"
                ).format(store.names.lease),
                ["user-raced", winner.instance_id],
            )
        )
        loser = asyncio.create_task(store.acquire_one("user-raced", me.instance_id))
        await wait_for_lock_waits(engine, store.application_name, 1)
        await racer.commit()
    found = await loser
    assert isinstance(found, HeldElsewhere)
    assert (found.owner, found.epoch, found.address) == (winner.instance_id, 1, "winner:1")


async def test_placement_store_a_batch_never_holds_more_than_its_bound_of_keys(
    stores: StoreFactory,
) -> None:
    store = await stores()
    me = await store.register("me:1", ttl=60)
    store.batched = BatchedAcquire(
        store._connection, store._limit_locks, store.names, max_batch_keys=300
    )
    keys = [f"user-{n:03d}" for n in range(301)]
    results = await asyncio.gather(*[store.acquire(k, me.instance_id) for k in keys])
    assert all(isinstance(r, Lease) and r.epoch == 1 for r in results)
    assert (store.batched.batches, store.batched.settled) == (2, 301)


@pytest.mark.parametrize("hold_timeout", [0.0, -1.0])
def test_placement_store_refuses_a_hold_timeout_that_bounds_nothing(
    engine: PostgresEngine, hold_timeout: float
) -> None:
    with pytest.raises(ValueError, match="hold_timeout must be positive"):
        PlacementStore(engine.config, hold_timeout=hold_timeout)


async def test_placement_store_start_migrates_a_schema_no_engine_prepared(
    engine: PostgresEngine,
) -> None:
    schema = unique_schema("placement")
    try:
        async with PlacementStore(dataclasses.replace(engine.config, schema=schema)) as store:
            me = await store.register("me:1", ttl=60)
            assert isinstance(await store.acquire("user-1", me.instance_id), Lease)
    finally:
        await drop_schemas(engine.config.url, [schema])


async def test_placement_store_start_fails_cleanly_when_no_server_answers(
    engine: PostgresEngine,
) -> None:
    config = dataclasses.replace(
        engine.config, url="postgresql://postgres@127.0.0.1:1/nothing", connect_timeout=0.5
    )
    store = PlacementStore(config, application_name="mutants-test-unreachable")
    before = asyncio.all_tasks()
    with pytest.raises(StorageUnavailable, match="cannot open a connection pool"):
        await store.start(migrated=True)
    for _ in range(5):
        await asyncio.sleep(0)
    assert {t for t in asyncio.all_tasks() if not t.done()} - before == set()  # pools closed


async def test_placement_store_closes_the_pool_that_opened_when_the_other_could_not(
    engine: PostgresEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One pool open and the other not (the server at its connection limit in between):
    start() fails and leaves neither open. The heartbeat pool is pointed at a closed port."""

    def heartbeat_unreachable(config: PostgresConfig, application_name: str) -> Any:
        if application_name.endswith("-heartbeat"):
            config = dataclasses.replace(config, url="postgresql://postgres@127.0.0.1:1/none")
        return make_pool(config, application_name)

    monkeypatch.setattr("persistence.placement.store.make_pool", heartbeat_unreachable)
    config = dataclasses.replace(engine.config, connect_timeout=1.0)
    store = PlacementStore(config, application_name="mutants-test-half-open")
    before = asyncio.all_tasks()
    with pytest.raises(StorageUnavailable, match="cannot open a connection pool"):
        await store.start(migrated=True)
    for _ in range(5):
        await asyncio.sleep(0)
    assert {t for t in asyncio.all_tasks() if not t.done()} - before == set()  # both closed


async def test_placement_store_one_key_path_retries_after_a_lock_wait_times_out(
    engine: PostgresEngine,
) -> None:
    async with PlacementStore(
        engine.config, application_name="mutants-test-retry", hold_timeout=2
    ) as store:
        me = await store.register("me:1", ttl=60)
        lease = await store.acquire("user-1", me.instance_id)
        assert isinstance(lease, Lease)
        async with await psycopg.AsyncConnection.connect(engine.config.url) as blocker:
            await blocker.execute(
                sql.SQL("SELECT 1 FROM {} WHERE key = %s FOR UPDATE").format(store.names.lease),
                ["user-1"],
            )
            waiting = asyncio.create_task(store.acquire_one("user-1", me.instance_id))
            first = await lock_wait_started(engine, store.application_name, None)
            await lock_wait_started(engine, store.application_name, first)  # the 2nd attempt
            await blocker.rollback()
        assert await waiting == lease
        await blocker_holds_for_good(engine, store)


async def blocker_holds_for_good(engine: PostgresEngine, store: PlacementStore) -> None:
    """A lock held past every attempt: the one-key path gives up in its own words."""
    async with (
        PlacementStore(engine.config, hold_timeout=0.1) as impatient,
        await psycopg.AsyncConnection.connect(engine.config.url) as blocker,
    ):
        me = await impatient.register("impatient:1", ttl=60)
        await blocker.execute(
            sql.SQL("SELECT 1 FROM {} WHERE key = %s FOR UPDATE").format(store.names.lease),
            ["user-1"],
        )
        with pytest.raises(PersistenceError, match="stayed contended over 3 attempts"):
            await impatient.acquire_one("user-1", me.instance_id)
        await blocker.rollback()


async def lock_wait_started(engine: PostgresEngine, application_name: str, after: object) -> object:
    """When the statement of ``application_name`` now waiting for a lock started, once it
    is not the one that started at ``after`` (bounded)."""
    deadline = time.monotonic() + 15
    async with await psycopg.AsyncConnection.connect(engine.config.url, autocommit=True) as conn:
        for _ in range(600):
            cur = await conn.execute(
                "SELECT query_start FROM pg_stat_activity "
                "WHERE application_name = %s AND wait_event_type = 'Lock'",
                [application_name],
            )
            row = await cur.fetchone()
            if row is not None and row[0] != after:
                started: object = row[0]
                return started
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
    raise AssertionError(f"no new lock wait of {application_name!r}")


async def test_placement_store_a_late_caller_waits_for_the_batch_in_flight(
    stores: StoreFactory,
) -> None:
    store = await stores()
    me = await store.register("me:1", ttl=60)
    counted = count_batch_connections(store, max_in_flight=1)
    first = asyncio.create_task(store.acquire("user-0", me.instance_id))
    for _ in range(3):  # its batch is in flight, nothing else is queued
        await asyncio.sleep(0)
    assert counted.open_now == 1
    late = [asyncio.create_task(store.acquire(f"user-{n}", me.instance_id)) for n in (1, 2)]
    results = await asyncio.gather(first, *late)
    assert all(isinstance(r, Lease) for r in results)
    assert counted.peak == 1


async def test_placement_store_close_waits_for_the_batches_in_flight(
    engine: PostgresEngine,
) -> None:
    store = PlacementStore(engine.config, application_name="mutants-test-close-busy")
    await store.start()
    me = await store.register("me:1", ttl=60)
    callers = [asyncio.create_task(store.acquire(f"user-{n}", me.instance_id)) for n in range(5)]
    for _ in range(3):  # the batch is in flight
        await asyncio.sleep(0)
    assert store.batched._batches._tasks
    await store.close()
    assert all(isinstance(caller.result(), Lease) for caller in callers)


async def test_placement_store_a_refused_caller_costs_one_statement_not_one_per_key(
    stores: StoreFactory,
) -> None:
    store = await stores()
    me = await store.register("me:1", ttl=60)
    await expire_now(store, me)
    results = await asyncio.gather(
        *[store.acquire(f"user-{n}", me.instance_id) for n in range(5)], return_exceptions=True
    )
    assert all(isinstance(r, MembershipLost) and r.reason == "expired" for r in results)
    assert (store.batched.batches, store.batched.settled) == (0, 0)  # refused in the batch


async def test_placement_store_one_key_release_never_waits_for_the_heartbeat_connection(
    stores: StoreFactory,
) -> None:
    """The heartbeat pool's one connection is the renewals' alone: a release taken the
    one-key way (after a batch's lock wait failed) goes through the main pool."""
    store = await stores()
    me = await store.register("me:1", ttl=60)
    lease = await store.acquire_one("user-1", me.instance_id)
    assert isinstance(lease, Lease)
    async with store._connection("hold the heartbeat connection", heartbeat=True):
        assert await asyncio.wait_for(store.release_one(lease), 10)
    assert not await store.release_one(lease)  # released: no longer held as given


async def test_placement_store_an_unreachable_server_at_start_is_storage_unavailable(
    engine: PostgresEngine,
) -> None:
    """Unless ``migrated``, start() first migrates over a connection of its own: a server
    it cannot reach there fails in the store's vocabulary, not as a driver error."""
    config = dataclasses.replace(
        engine.config, url="postgresql://postgres@127.0.0.1:1/nothing", connect_timeout=0.5
    )
    store = PlacementStore(config, application_name="mutants-test-unreachable-migrate")
    with pytest.raises(StorageUnavailable, match="cannot prepare placement at"):
        await store.start()
