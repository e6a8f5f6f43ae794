"""Coalesced lease acquisition on a real PostgreSQL: concurrent acquires of one instance share
one statement, give exactly the one-key path's results (takeovers included, with their epoch
and log), refuse a caller that may take no user, and survive a cancelled caller; a failing
statement fails every caller of its batch in the store's vocabulary."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import psycopg
import pytest
from psycopg import sql

from persistence.errors import SchemaError
from persistence.placement import (
    HeldElsewhere,
    Lease,
    MembershipLost,
    PlacementStore,
)
from persistence.postgres import PostgresEngine
from persistence.postgres.placement_tables import PlacementNames
from tests.conftest import EngineFactory
from tests.persistence.conftest import StoreFactory, expire_now

Result = Lease | HeldElsewhere


@pytest.fixture
async def engine(engine_factory: EngineFactory) -> PostgresEngine:
    return await engine_factory()


async def takeovers(engine: PostgresEngine) -> set[tuple[str, int, str, str]]:
    names = PlacementNames(engine.config.schema, engine.config.table_prefix)
    async with await psycopg.AsyncConnection.connect(engine.config.url) as conn:
        cur = await conn.execute(
            sql.SQL("SELECT key, epoch, from_owner, to_owner FROM {}").format(names.takeover)
        )
        return {(r[0], int(r[1]), r[2], r[3]) for r in await cur.fetchall()}


def shape(result: Result, prefix: str) -> tuple[Any, ...]:
    """A result without its key's prefix and its time, to compare two sets of keys."""
    key = result.key.removeprefix(prefix)
    if isinstance(result, Lease):
        return ("lease", key, result.owner, result.epoch, result.taken_over_from)
    return ("elsewhere", key, result.owner, result.epoch, result.address, result.draining)


async def test_a_mixed_batch_gives_the_one_key_results_in_one_statement(
    engine: PostgresEngine, stores: StoreFactory
) -> None:
    store, other_store = await stores(), await stores()
    me = await store.register("me:1", ttl=60)
    live = await other_store.register("live:1", ttl=60)
    dead = await other_store.register("dead:1", ttl=60)
    kinds = ("fresh", "released", "own", "live", "dead")
    for prefix in ("batched/", "single/"):
        for n in range(4):
            held = await store.acquire_one(f"{prefix}released-{n}", me.instance_id)
            assert isinstance(held, Lease) and await store.release(held)
            assert isinstance(await store.acquire_one(f"{prefix}own-{n}", me.instance_id), Lease)
            assert isinstance(await store.acquire_one(f"{prefix}live-{n}", live.instance_id), Lease)
            assert isinstance(await store.acquire_one(f"{prefix}dead-{n}", dead.instance_id), Lease)
    await expire_now(store, dead)
    keys = [f"{kind}-{n}" for kind in kinds for n in range(4)]

    before, settled = store.batched.batches, store.batched.settled
    batched = await asyncio.gather(*[store.acquire(f"batched/{k}", me.instance_id) for k in keys])
    assert store.batched.batches == before + 1
    assert store.batched.settled == settled + 12  # fresh, released and own; 4 of each
    single = [await store.acquire_one(f"single/{k}", me.instance_id) for k in keys]

    assert [shape(r, "batched/") for r in batched] == [shape(r, "single/") for r in single]
    by_kind = {
        k.split("-")[0]: shape(r, "batched/")[2:] for k, r in zip(keys, batched, strict=True)
    }
    assert by_kind == {
        "fresh": (me.instance_id, 1, None),
        "released": (me.instance_id, 2, None),
        "own": (me.instance_id, 1, None),
        "live": (live.instance_id, 1, "live:1", False),
        "dead": (me.instance_id, 2, dead.instance_id),
    }
    logged = {t for t in await takeovers(engine) if t[0].startswith("batched/")}
    assert logged == {(f"batched/dead-{n}", 2, dead.instance_id, me.instance_id) for n in range(4)}
    # The leases are in the table as answered: acquiring again changes no owner or epoch.
    again = await asyncio.gather(*[store.acquire(f"batched/{k}", me.instance_id) for k in keys])
    assert [(r.owner, r.epoch) for r in again] == [(r.owner, r.epoch) for r in batched]


async def test_many_fresh_keys_share_one_statement_and_a_duplicate_key_one_lease(
    stores: StoreFactory,
) -> None:
    store = await stores()
    me = await store.register("me:1", ttl=60)
    keys = [f"user-{n:04d}" for n in range(300)] + ["user-0007"]
    results = await asyncio.gather(*[store.acquire(k, me.instance_id) for k in keys])
    assert (store.batched.batches, store.batched.settled) == (1, 301)
    assert all(isinstance(r, Lease) and (r.owner, r.epoch) == (me.instance_id, 1) for r in results)
    assert results[7] == results[-1]


async def test_two_instances_batching_the_same_fresh_keys_get_one_owner_each(
    stores: StoreFactory,
) -> None:
    first, second = await stores(), await stores()
    a = await first.register("a:1", ttl=60)
    b = await second.register("b:1", ttl=60)
    keys = [f"user-{n:03d}" for n in range(100)]
    results = await asyncio.gather(
        *[first.acquire(k, a.instance_id) for k in keys],
        *[second.acquire(k, b.instance_id) for k in reversed(keys)],
    )
    by_key: dict[str, list[Result]] = {}
    for result in results:
        by_key.setdefault(result.key, []).append(result)
    for key, answers in by_key.items():
        leases = [r for r in answers if isinstance(r, Lease)]
        assert len(leases) == 1 and leases[0].epoch == 1, (key, answers)
        others = [r for r in answers if isinstance(r, HeldElsewhere)]
        assert [(o.owner, o.epoch) for o in others] == [(leases[0].owner, 1)]


@pytest.mark.parametrize("state", ["draining", "expired", "not registered"])
async def test_a_caller_that_may_take_no_user_gets_membership_lost_and_writes_nothing(
    engine: PostgresEngine, stores: StoreFactory, state: str
) -> None:
    store = await stores()
    me = await store.register("me:1", ttl=60)
    keeper = await store.register("keeper:1", ttl=60)
    released = await store.acquire_one("user-released", keeper.instance_id)
    assert isinstance(released, Lease) and await store.release(released)
    instance_id = me.instance_id
    if state == "draining":
        assert await store.drain(instance_id)
    elif state == "expired":
        await expire_now(store, me)
    else:
        instance_id = "nobody"
    keys = ["user-fresh-1", "user-fresh-2", "user-released"]
    results = await asyncio.gather(
        *[store.acquire(k, instance_id) for k in keys], return_exceptions=True
    )
    assert all(isinstance(r, MembershipLost) and r.reason == state for r in results), results
    status = await store.status()
    assert sum(i.users for i in status.instances) == 0
    after = await store.acquire_one("user-released", keeper.instance_id)
    assert isinstance(after, Lease) and after.epoch == 2  # the release's epoch + 1, not + 2


@pytest.mark.parametrize("turns", [1, 3], ids=["queued", "in-flight"])
async def test_a_cancelled_caller_leaves_the_others_their_leases(
    stores: StoreFactory, turns: int
) -> None:
    """Cancelled while its key waits for a batch (1 turn: every caller has queued), or
    while the batch runs (3 turns: started, and still short of its round trips)."""
    store = await stores()
    me = await store.register("me:1", ttl=60)
    keys = [f"user-{n}" for n in range(20)]
    tasks = [asyncio.create_task(store.acquire(k, me.instance_id)) for k in keys]
    for _ in range(turns):
        await asyncio.sleep(0)
    tasks[3].cancel()
    await asyncio.wait(tasks)
    assert tasks[3].cancelled()
    assert store.batched.settled == (19 if turns == 1 else 20)  # dropped, or answered unheard
    for task in tasks[:3] + tasks[4:]:
        result = task.result()
        assert isinstance(result, Lease) and (result.owner, result.epoch) == (me.instance_id, 1)
    # The cancelled key is free or already this instance's: either way it is ours at epoch 1.
    again = await store.acquire("user-3", me.instance_id)
    assert isinstance(again, Lease) and again.epoch == 1


async def test_a_failing_statement_fails_every_caller_of_its_batch(
    engine: PostgresEngine,
) -> None:
    config = dataclasses.replace(engine.config, table_prefix="nothing_here_")
    store = PlacementStore(config, application_name="batched-test-broken")
    await store.start(migrated=True)  # no tables under this prefix
    try:
        keys = [f"user-{n}" for n in range(5)]
        results = await asyncio.gather(
            *[store.acquire(k, "someone") for k in keys], return_exceptions=True
        )
    finally:
        await store.close()
    assert all(isinstance(r, SchemaError) for r in results), results
    assert [str(r).split(":")[0] for r in results] == [f"acquire the lease of {k!r}" for k in keys]
