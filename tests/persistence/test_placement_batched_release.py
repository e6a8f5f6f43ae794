"""Coalesced lease release on a real PostgreSQL: concurrent releases share one statement and
give exactly the one-key release's results (a lease no longer held as given is left alone);
a lock wait that times out falls back to the one-key release; a failing statement fails
every caller of its batch, each naming its key; a cancelled caller harms no other."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql

from persistence.errors import SchemaError
from persistence.placement import Lease, PlacementStore
from persistence.postgres import PostgresEngine
from persistence.postgres.placement_tables import PlacementNames
from tests.conftest import EngineFactory
from tests.persistence.conftest import StoreFactory


@pytest.fixture
async def engine(engine_factory: EngineFactory) -> PostgresEngine:
    return await engine_factory()


async def rows(engine: PostgresEngine, prefix: str) -> dict[str, tuple[str | None, int]]:
    """Every lease row whose key starts with ``prefix``: (owner, epoch) by key."""
    names = PlacementNames(engine.config.schema, engine.config.table_prefix)
    async with await psycopg.AsyncConnection.connect(engine.config.url) as conn:
        cur = await conn.execute(
            sql.SQL("SELECT key, owner, epoch FROM {} WHERE key LIKE %s").format(names.lease),
            [prefix + "%"],
        )
        return {key: (owner, int(epoch)) for key, owner, epoch in await cur.fetchall()}


async def leases(store: PlacementStore, instance_id: str, keys: list[str]) -> list[Lease]:
    got = [await store.acquire_one(key, instance_id) for key in keys]
    assert all(isinstance(lease, Lease) for lease in got)
    return [lease for lease in got if isinstance(lease, Lease)]


async def test_concurrent_releases_share_one_statement_with_the_one_key_results(
    engine: PostgresEngine, stores: StoreFactory
) -> None:
    store = await stores()
    me = await store.register("me:1", ttl=60)
    other = await store.register("other:1", ttl=60)
    results: dict[str, list[bool]] = {}
    for prefix in ("batched/", "single/"):
        held = await leases(store, me.instance_id, [f"{prefix}held-{n}" for n in range(50)])
        # No longer held as given: released already, or held at another epoch by another.
        gone = await leases(store, me.instance_id, [f"{prefix}gone-{n}" for n in range(3)])
        for lease in gone:
            assert await store.release_one(lease)
        moved = await leases(store, me.instance_id, [f"{prefix}moved-{n}" for n in range(3)])
        for lease in moved:
            assert await store.release_one(lease)
            assert isinstance(await store.acquire_one(lease.key, other.instance_id), Lease)
        # Held by this same instance again, at the next epoch: the old lease is stale.
        stale = await leases(store, me.instance_id, [f"{prefix}stale-{n}" for n in range(3)])
        for lease in stale:
            assert await store.release_one(lease)
            assert isinstance(await store.acquire_one(lease.key, me.instance_id), Lease)
        every = held + gone + moved + stale
        if prefix == "batched/":
            before = store.batched_release.batches
            results[prefix] = list(await asyncio.gather(*[store.release(x) for x in every]))
            assert store.batched_release.batches == before + 1
        else:
            results[prefix] = [await store.release_one(x) for x in every]
    assert results["batched/"] == results["single/"] == [True] * 50 + [False] * 9
    batched = {k.removeprefix("batched/"): v for k, v in (await rows(engine, "batched/")).items()}
    single = {k.removeprefix("single/"): v for k, v in (await rows(engine, "single/")).items()}
    assert batched == single
    assert batched["held-7"] == (None, 1)  # released, its epoch kept
    assert batched["moved-2"] == (other.instance_id, 2)  # the new owner's lease untouched
    assert batched["stale-1"] == (me.instance_id, 2)  # this instance's newer lease untouched
    again = await store.acquire("batched/held-7", me.instance_id)
    assert isinstance(again, Lease) and again.epoch == 2


async def test_a_lock_wait_that_times_out_falls_back_to_the_one_key_release(
    engine: PostgresEngine, stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await stores(hold_timeout=0.2)
    me = await store.register("me:1", ttl=60)
    held = await leases(store, me.instance_id, [f"user-{n}" for n in range(10)])
    one_key: list[str] = []
    release_one = store.release_one

    async def counted(lease: Lease) -> bool:
        one_key.append(lease.key)
        return await release_one(lease)

    monkeypatch.setattr(store, "release_one", counted)
    names = PlacementNames(engine.config.schema, engine.config.table_prefix)
    async with await psycopg.AsyncConnection.connect(engine.config.url) as locker:
        async with locker.transaction():
            await locker.execute(
                sql.SQL("SELECT 1 FROM {} WHERE key = 'user-4' FOR UPDATE").format(names.lease)
            )
            releasing = asyncio.gather(*[store.release(lease) for lease in held])
            for _ in range(300):  # bounded: the batch's lock wait ends after 0.2 s
                if len(one_key) == len(held):
                    break
                await asyncio.sleep(0.02)
            assert sorted(one_key) == sorted(lease.key for lease in held)
        # The row lock is gone: the one-key releases that waited for it go through.
        assert await asyncio.wait_for(releasing, 30) == [True] * len(held)
    assert set((await rows(engine, "user-")).values()) == {(None, 1)}


async def test_a_cancelled_caller_leaves_the_others_released(
    engine: PostgresEngine, stores: StoreFactory
) -> None:
    store = await stores()
    me = await store.register("me:1", ttl=60)
    held = await leases(store, me.instance_id, [f"user-{n:02d}" for n in range(20)])
    tasks = [asyncio.create_task(store.release(lease)) for lease in held]
    await asyncio.sleep(0)
    tasks[3].cancel()
    await asyncio.wait(tasks)
    assert tasks[3].cancelled()
    assert all(task.result() for task in tasks[:3] + tasks[4:])
    after = await rows(engine, "user-")
    assert {after[lease.key] for lease in held if lease.key != "user-03"} == {(None, 1)}
    assert after["user-03"] == (me.instance_id, 1)  # dropped before its batch: still held


async def test_a_failing_statement_fails_every_caller_of_its_batch(
    engine: PostgresEngine,
) -> None:
    config = dataclasses.replace(engine.config, table_prefix="nothing_here_")
    store = PlacementStore(config, application_name="release-test-broken")
    await store.start(migrated=True)  # no tables under this prefix
    try:
        gone = [Lease(f"user-{n}", "someone", 1, datetime.now(UTC)) for n in range(5)]
        results = await asyncio.gather(*[store.release(x) for x in gone], return_exceptions=True)
    finally:
        await store.close()
    assert all(isinstance(r, SchemaError) for r in results), results
    assert len({id(r) for r in results}) == len(results)
    named = [f"release the lease of {lease.key!r}" for lease in gone]
    assert [str(r).split(":")[0] for r in results] == named
