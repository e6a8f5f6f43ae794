"""Placement on a real PostgreSQL: one owner per key under concurrent acquirers, expiry
judged by the database's clock, epochs that grow on every takeover, release and handover,
and the fence that refuses a stale owner's write inside the write's own statement."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from persistence.placement import (
    HeldElsewhere,
    Lease,
    LeaseLost,
    Membership,
    MembershipLost,
    PlacementStore,
    Registration,
    check_fence,
    fence_cte,
    fence_params,
    stale_leases,
)
from persistence.postgres import PostgresEngine
from persistence.postgres.fence import FENCE_REQUESTS
from persistence.postgres.schema import LATEST_VERSION, Names, schema_version
from tests.conftest import EngineFactory
from tests.persistence.conftest import StoreFactory, expire_now


@pytest.fixture
async def engine(engine_factory: EngineFactory) -> PostgresEngine:
    return await engine_factory()


async def wait_for(
    condition: Callable[[], Awaitable[Any]], what: str, *, within: float = 15.0
) -> Any:
    """Poll ``condition`` until it returns something truthy; bounded in time and count."""
    deadline = time.monotonic() + within
    for _ in range(int(within / 0.05) + 1):
        result = await condition()
        if result:
            return result
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def raw(engine: PostgresEngine) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(engine.config.url, autocommit=True)


# -- membership and acquisition --------------------------------------------------------------


async def test_the_engine_migration_creates_the_placement_tables(engine: PostgresEngine) -> None:
    async with await raw(engine) as conn:
        assert await schema_version(conn, Names(engine.config.schema, "")) == LATEST_VERSION >= 2


async def test_concurrent_acquirers_on_two_stores_get_one_owner(stores: StoreFactory) -> None:
    first, second = await stores(), await stores()
    registrations: list[tuple[PlacementStore, Registration]] = []
    for i in range(12):
        store = first if i % 2 else second
        registrations.append((store, await store.register(f"10.0.0.{i}:8000", ttl=60)))
    for key in ("user-a", "user-b", "user-c", "user-d", "user-e"):
        results = await asyncio.gather(
            *[store.acquire(key, reg.instance_id) for store, reg in registrations]
        )
        leases = [r for r in results if isinstance(r, Lease)]
        assert len(leases) == 1, results
        winner = leases[0]
        assert winner.epoch == 1 and winner.taken_over_from is None
        address = {reg.instance_id: reg.address for _, reg in registrations}[winner.owner]
        others = [r for r in results if isinstance(r, HeldElsewhere)]
        assert len(others) == 11
        assert {(o.owner, o.epoch, o.address) for o in others} == {(winner.owner, 1, address)}


async def test_concurrent_takeovers_of_an_expired_or_released_lease_give_one_owner(
    stores: StoreFactory,
) -> None:
    first, second = await stores(), await stores()
    dead = await first.register("dead:1", ttl=60)
    alive = await first.register("alive:1", ttl=60)
    assert isinstance(await first.acquire("user-orphan", dead.instance_id), Lease)
    released = await first.acquire("user-free", alive.instance_id)
    assert isinstance(released, Lease) and await first.release(released)
    await expire_now(first, dead)
    contenders = [
        (store, await store.register(f"c:{i}", ttl=60))
        for i, store in enumerate([first, second] * 5)
    ]
    for key, taken_from in (("user-orphan", dead.instance_id), ("user-free", None)):
        results = await asyncio.gather(
            *[store.acquire(key, reg.instance_id) for store, reg in contenders]
        )
        leases = [r for r in results if isinstance(r, Lease)]
        assert len(leases) == 1, results
        assert (leases[0].epoch, leases[0].taken_over_from) == (2, taken_from)
        assert {r.owner for r in results if isinstance(r, HeldElsewhere)} == {leases[0].owner}
    assert (await first.status()).takeovers_last_hour == 1


async def test_the_owner_reacquiring_keeps_its_epoch(stores: StoreFactory) -> None:
    store = await stores()
    me = await store.register("a:1", ttl=60)
    first = await store.acquire("user-1", me.instance_id)
    again = await store.acquire("user-1", me.instance_id)
    assert isinstance(first, Lease) and isinstance(again, Lease)
    assert (again.owner, again.epoch) == (first.owner, first.epoch) == (me.instance_id, 1)


async def test_expiry_is_judged_by_the_database_clock_and_takeover_bumps_the_epoch(
    stores: StoreFactory,
) -> None:
    store = await stores()
    steady = await store.register("a:1", ttl=60)
    successor = await store.register("b:1", ttl=60)
    held = await store.acquire("user-steady", steady.instance_id)
    assert isinstance(held, Lease)
    # A live owner is never taken over.
    assert isinstance(await store.acquire("user-steady", successor.instance_id), HeldElsewhere)

    doomed = await store.register("c:1", ttl=60)
    lost = await store.acquire("user-doomed", doomed.instance_id)
    assert isinstance(lost, Lease) and lost.epoch == 1
    await expire_now(store, doomed)

    async def take_over() -> Lease | None:
        result = await store.acquire("user-doomed", successor.instance_id)
        return result if isinstance(result, Lease) else None

    taken: Lease = await wait_for(take_over, "the takeover of an expired owner")
    assert taken.epoch == 2 and taken.taken_over_from == doomed.instance_id
    # The database stamped the takeover no earlier than the expiry it holds.
    instances = (await store.status()).instances
    expiry = next(i.expires_at for i in instances if i.instance_id == doomed.instance_id)
    assert taken.acquired_at >= expiry
    # Dead is dead: the expired registration is never renewed, and may take no user.
    assert not (await store.heartbeat(doomed.instance_id)).valid
    with pytest.raises(MembershipLost, match="expired"):
        await store.acquire("user-other", doomed.instance_id)

    status = await store.status()
    assert status.takeovers_last_hour == 1
    rows = {i.instance_id: i for i in status.instances}
    assert rows[successor.instance_id].takeovers_last_hour == 1
    assert rows[successor.instance_id].users == 1 and rows[steady.instance_id].users == 1
    assert not rows[doomed.instance_id].live and rows[doomed.instance_id].users == 0
    assert rows[steady.instance_id].live and rows[steady.instance_id].heartbeat_age >= 0


async def test_a_heartbeat_moves_the_expiry_and_the_local_deadline(stores: StoreFactory) -> None:
    store = await stores()
    me = await store.register(None, ttl=30)
    renewal = await store.heartbeat(me.instance_id)
    assert renewal.valid and renewal.expires_at is not None and renewal.local_deadline
    assert renewal.expires_at >= me.expires_at
    assert renewal.local_deadline >= me.local_deadline
    assert renewal.local_deadline < time.monotonic() + 30


async def test_release_frees_the_key_without_a_takeover(stores: StoreFactory) -> None:
    store = await stores()
    a, b = await store.register("a:1", ttl=60), await store.register("b:1", ttl=60)
    lease = await store.acquire("user-1", a.instance_id)
    assert isinstance(lease, Lease)
    assert await store.release(lease)
    assert not await store.release(lease)  # already released
    moved = await store.acquire("user-1", b.instance_id)
    assert isinstance(moved, Lease)
    assert moved.epoch == 2 and moved.taken_over_from is None
    assert not await store.release(lease)  # a stale lease releases nothing
    assert (await store.status()).takeovers_last_hour == 0


async def test_draining_hands_users_over_on_deregistration(stores: StoreFactory) -> None:
    store = await stores()
    old, new = await store.register("old:1", ttl=60), await store.register("new:1", ttl=60)
    for key in ("user-1", "user-2"):
        assert isinstance(await store.acquire(key, old.instance_id), Lease)
    assert await store.drain(old.instance_id)
    with pytest.raises(MembershipLost, match="draining"):
        await store.acquire("user-3", old.instance_id)
    waiting = await store.acquire("user-1", new.instance_id)
    assert isinstance(waiting, HeldElsewhere) and waiting.draining
    assert await store.deregister(old.instance_id) == 2
    moved = await store.acquire("user-1", new.instance_id)
    assert isinstance(moved, Lease) and moved.epoch == 2 and moved.taken_over_from is None
    assert [i.instance_id for i in (await store.status()).instances] == [new.instance_id]


async def test_prune_removes_long_dead_instances_and_frees_their_leases(
    stores: StoreFactory,
) -> None:
    store = await stores()
    dead = await store.register("dead:1", ttl=60)
    assert isinstance(await store.acquire("user-1", dead.instance_id), Lease)
    await expire_now(store, dead)
    assert await store.prune(dead_for=0) == (1, 0)
    heir = await store.register("heir:1", ttl=60)
    moved = await store.acquire("user-1", heir.instance_id)
    assert isinstance(moved, Lease) and moved.epoch == 2 and moved.taken_over_from is None


async def test_membership_renews_and_reports_a_lost_registration(stores: StoreFactory) -> None:
    store = await stores()
    registration = await store.register("a:1", ttl=2.0)
    reasons: list[str] = []
    membership = Membership(store, registration, renew_every=0.2, on_lost=reasons.append)
    membership.start()
    try:

        async def renewed() -> bool:
            row = (await store.status()).instances[0]
            return row.heartbeat_at > registration.started_at

        await wait_for(renewed, "a renewal")
        assert membership.serving()
        await store.deregister(registration.instance_id)
        await asyncio.wait_for(membership.lost.wait(), 15)
        assert not membership.serving()
        assert reasons and "expired" in reasons[0]
    finally:
        await membership.stop()


# -- the fence -------------------------------------------------------------------------------


async def _probe_table(engine: PostgresEngine) -> sql.Identifier:
    table = sql.Identifier(engine.config.schema, "probe")
    async with await raw(engine) as conn:
        await conn.execute(sql.SQL("CREATE TABLE {} (key text, epoch bigint)").format(table))
    return table


def _fenced_insert(store: PlacementStore, table: sql.Identifier) -> sql.Composed:
    """A batch write shaped as the journal writer's: one statement, one fence join, and
    only the members that pass are written."""
    return sql.SQL(
        "WITH req AS ({requests}), {fenced}, "
        "wrote AS (INSERT INTO {table} (key, epoch) "
        "SELECT f.persistence_id, r.epoch::bigint FROM fenced f "
        "JOIN req r ON r.persistence_id = f.persistence_id RETURNING key) "
        "SELECT coalesce(array_agg(key ORDER BY key), '{{}}') FROM wrote"
    ).format(requests=FENCE_REQUESTS, fenced=fence_cte(store.names), table=table)


async def _held(store: PlacementStore, key: str, instance: Registration) -> Lease:
    lease = await store.acquire(key, instance.instance_id)
    assert isinstance(lease, Lease)
    return lease


async def test_one_statement_writes_the_fresh_members_and_refuses_the_stale_one(
    engine: PostgresEngine, stores: StoreFactory
) -> None:
    store = await stores()
    table = await _probe_table(engine)
    a, b = await store.register("a:1", ttl=60), await store.register("b:1", ttl=60)
    fresh = [await _held(store, key, a) for key in ("user-1", "user-2")]
    stale = await _held(store, "user-3", a)
    assert await store.release(stale)
    await _held(store, "user-3", b)  # epoch 2 now belongs to b
    batch = [*fresh, stale]
    async with await raw(engine) as conn:
        cur = await conn.execute(_fenced_insert(store, table), fence_params(batch))
        row = await cur.fetchone()
        assert row is not None and row[0] == ["user-1", "user-2"]
        cur = await conn.execute(sql.SQL("SELECT key, epoch FROM {} ORDER BY key").format(table))
        assert await cur.fetchall() == [("user-1", 1), ("user-2", 1)]
        async with conn.transaction():
            assert await stale_leases(conn, store.names, batch) == [stale]


async def test_check_fence_passes_a_held_lease_and_refuses_a_stale_one(
    engine: PostgresEngine, stores: StoreFactory
) -> None:
    store = await stores()
    a, b = await store.register("a:1", ttl=60), await store.register("b:1", ttl=60)
    lease = await _held(store, "user-1", a)
    async with await raw(engine) as conn:
        with pytest.raises(ValueError, match="inside the write's transaction"):
            await check_fence(conn, store.names, lease)
        async with conn.transaction():
            await check_fence(conn, store.names, lease)
        assert await store.release(lease)
        successor = await _held(store, "user-1", b)
        with pytest.raises(LeaseLost) as info:
            async with conn.transaction():
                await check_fence(conn, store.names, lease)
        assert (info.value.key, info.value.epoch) == ("user-1", 1)
        async with conn.transaction():
            await check_fence(conn, store.names, successor)
        # An owner whose registration is gone writes nothing, taken over or not.
        await store.deregister(b.instance_id)
        with pytest.raises(LeaseLost):
            async with conn.transaction():
                await check_fence(conn, store.names, successor)


async def wait_for_lock_wait(
    spy: psycopg.AsyncConnection[Any], waiter: psycopg.AsyncConnection[Any], what: str
) -> None:
    """Until ``waiter``'s backend waits for a lock, as ``pg_stat_activity`` shows it."""
    pid = waiter.info.backend_pid

    async def waiting() -> bool:
        cur = await spy.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]
        )
        row = await cur.fetchone()
        return row is not None and row[0] == "Lock"

    await wait_for(waiting, what)


@dataclass
class Scene:
    """Instance ``a`` holds ``lease`` on ``user-1``; ``b`` is live; ``table`` is empty."""

    engine: PostgresEngine
    store: PlacementStore
    table: sql.Identifier
    b: Registration
    lease: Lease

    def take_over(self) -> tuple[sql.Composed, list[str]]:
        """A takeover's write to the lease row, to run on a connection of one's own."""
        statement = sql.SQL(
            "UPDATE {} SET owner = %s, epoch = epoch + 1 WHERE key = %s RETURNING epoch"
        ).format(self.store.names.lease)
        return statement, [self.b.instance_id, self.lease.key]

    async def rows(self, conn: psycopg.AsyncConnection[Any]) -> int:
        cur = await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self.table))
        row = await cur.fetchone()
        return int(row[0]) if row else -1


@pytest.fixture
async def scene(engine: PostgresEngine, stores: StoreFactory) -> Scene:
    store = await stores()
    table = await _probe_table(engine)
    a, b = await store.register("a:1", ttl=60), await store.register("b:1", ttl=60)
    return Scene(engine, store, table, b, await _held(store, "user-1", a))


async def test_a_write_queued_behind_a_takeover_is_refused(scene: Scene) -> None:
    engine, store = scene.engine, scene.store
    async with await raw(engine) as taker, await raw(engine) as writer, await raw(engine) as spy:
        async with taker.transaction():
            await taker.execute(*scene.take_over())  # in flight: not yet committed
            write = asyncio.ensure_future(
                writer.execute(_fenced_insert(store, scene.table), fence_params([scene.lease]))
            )
            await wait_for_lock_wait(spy, writer, "the fenced write to wait for the takeover")
        cur = await write
        row = await cur.fetchone()
        assert row is not None and row[0] == []
        assert await scene.rows(spy) == 0


async def test_a_takeover_waits_for_a_fenced_write_to_commit(scene: Scene) -> None:
    engine, store = scene.engine, scene.store
    async with await raw(engine) as writer, await raw(engine) as taker, await raw(engine) as spy:
        async with writer.transaction():
            await check_fence(writer, store.names, scene.lease)
            await writer.execute(
                sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(scene.table), ["user-1", 1]
            )
            takeover = asyncio.ensure_future(taker.execute(*scene.take_over()))
            await wait_for_lock_wait(spy, taker, "the takeover to wait for the fenced write")
            assert not takeover.done()
        cur = await takeover
        assert await cur.fetchone() == (2,)
        assert await scene.rows(spy) == 1
