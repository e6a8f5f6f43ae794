"""Cluster placement in the runtime (``actors/placement.py``), each invariant on two lease
tables: the in-memory one (``InMemoryLeases`` under an ``InMemoryEngine``) and PostgreSQL
(``PlacementStore`` + ``Membership`` + ``ClusterPlacement`` under a ``PostgresEngine``).

Two actor systems in one event loop stand for two instances sharing one storage.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from psycopg import sql

from actors import (
    ActivationElsewhere,
    ActivationLost,
    ActorSystem,
    Decision,
    PersistentActor,
    PersistentContext,
    Placement,
    query,
    reset_with_backoff,
    spawn_actor,
    stop,
)
from persistence import Engine, InMemoryEngine, NewEvent
from persistence.embedded import EmbeddedPostgres
from persistence.placement import ClusterPlacement, Lease, Membership, PlacementStore
from persistence.placement.memory import InMemoryLeases
from persistence.postgres import PostgresEngine
from tests.actors.conftest import eventually, settle
from tests.conftest import EngineFactory

T = 5.0


class Counter(PersistentActor[list[int]]):
    """Persists each int it is sent and replies with every int so far; ``"boom"`` raises."""

    def __init__(self, persistence_id: str = "counter", *, reset_on_crash: bool = False) -> None:
        self.persistence_id = persistence_id
        self.reset_on_crash = reset_on_crash
        self.policy = reset_with_backoff(0.001, max_delay=0.01)

    def initial_state(self) -> list[int]:
        return []

    def on_event(self, state: list[int], event: Any) -> list[int]:
        return [*state, int(event["n"])]

    async def on_command(
        self, state: list[int], command: Any, ctx: PersistentContext[list[int]]
    ) -> None:
        if command == "boom":
            raise RuntimeError("boom")
        if command == "state":
            ctx.reply(ctx.state)
            return
        await ctx.persist({"n": command})
        ctx.reply(ctx.state)

    def on_crash(self, msg: object, error: BaseException, ctx: Any) -> Any:
        # A policy that would restart the actor in place, again and again.
        return self.policy(msg, error, ctx) if self.reset_on_crash else Decision.RESET


class Cluster:
    """Instances on one storage and one lease table, in memory or on PostgreSQL."""

    def __init__(self, engine: Engine, memory: InMemoryLeases | None) -> None:
        self.engine = engine
        self.memory = memory
        self.store: PlacementStore | None = None
        self.memberships: dict[str, Membership] = {}

    async def instance(self, address: str) -> tuple[str, Placement]:
        if self.memory is not None:
            iid = self.memory.register(address, ttl=60)
            return iid, self.memory.placement(iid)
        assert self.store is not None
        registration = await self.store.register(address, ttl=60)
        membership = Membership(self.store, registration, renew_every=0.05)
        membership.start()
        self.memberships[registration.instance_id] = membership
        return registration.instance_id, ClusterPlacement(self.store, membership)

    async def expire(self, iid: str) -> None:
        """The instance is judged expired (its TTL ran out); it learns so itself (memory:
        at once; PostgreSQL: at its next renewal, within 0.05 s)."""
        if self.memory is not None:
            self.memory.expire(iid)
            return
        assert self.store is not None
        await self._execute(
            "UPDATE {} SET expires_at = now() - interval '1 second' WHERE id = %s",
            self.store.names.instance,
            iid,
        )

    async def owner(self, key: str) -> str | None:
        if self.memory is not None:
            return self.memory.owner_of(key)
        assert self.store is not None
        row = await self._execute(
            "SELECT owner FROM {} WHERE key = %s", self.store.names.lease, key
        )
        return None if row is None else row[0]

    async def steal(self, lease: Lease, iid: str) -> Lease:
        """Free ``lease`` behind its owner's back (as an operator's prune would) and give
        the key to ``iid``; the owner stays live but no longer holds it."""
        if self.memory is not None:
            assert self.memory.release(lease)
            got = self.memory.acquire(lease.key, iid)
        else:
            assert self.store is not None
            assert await self.store.release(lease)
            got = await self.store.acquire(lease.key, iid)
        assert isinstance(got, Lease)
        return got

    async def _execute(self, statement: str, table: sql.Composed, arg: str) -> Any:
        assert self.store is not None and isinstance(self.engine, PostgresEngine)
        import psycopg

        async with await psycopg.AsyncConnection.connect(
            self.engine.config.url, autocommit=True
        ) as conn:
            cur = await conn.execute(sql.SQL(statement).format(table), [arg])
            return await cur.fetchone() if cur.description else None


@pytest.fixture(params=["memory", "postgres"])
async def cluster(
    request: pytest.FixtureRequest, engine_factory: EngineFactory
) -> AsyncIterator[Cluster]:
    if request.param == "memory":
        table = InMemoryLeases()
        yield Cluster(InMemoryEngine(leases=table), table)
        return
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if not url:
        embedded: EmbeddedPostgres = request.getfixturevalue("embedded_postgres")
        url = embedded.url
    engine = await engine_factory(url)
    world = Cluster(engine, None)
    async with PlacementStore(engine.config, application_name="actors-placement") as store:
        world.store = store
        yield world
        for membership in world.memberships.values():
            await membership.stop()


def lease_of(system: ActorSystem) -> Lease:
    (activation,) = system.activations.values()
    assert activation.lease is not None
    return activation.lease


async def test_an_activation_holds_its_lease_and_passivation_releases_it(
    cluster: Cluster,
) -> None:
    iid, placement = await cluster.instance("a:1")
    async with ActorSystem("a", engine=cluster.engine, placement=placement) as system:
        ref = spawn_actor(system, Counter(), "c", shutdown_after=0.05)
        assert await query(ref, 1, T) == [1]
        assert await cluster.owner("counter") == iid
        assert lease_of(system).epoch == 1
        await eventually(lambda: not system.activations)  # passivated
        await eventually(lambda: system.metrics.passivations == 1)
        assert await cluster.owner("counter") is None
        ref = spawn_actor(system, Counter(), "c")  # the next activation: the next epoch
        assert await query(ref, 2, T) == [1, 2]
        assert lease_of(system).epoch == 2
    assert await cluster.owner("counter") is None  # shutdown released it too


async def test_a_live_owner_elsewhere_refuses_the_activation_at_once(cluster: Cluster) -> None:
    a, here = await cluster.instance("a:1")
    _, there = await cluster.instance("b:1")
    async with (
        ActorSystem("a", engine=cluster.engine, placement=here) as system_a,
        ActorSystem("b", engine=cluster.engine, placement=there) as system_b,
    ):
        assert await query(spawn_actor(system_a, Counter(), "c"), 1, T) == [1]
        actor = Counter(reset_on_crash=True)
        ref = spawn_actor(system_b, actor, "c")
        answers = await asyncio.gather(
            *[query(ref, n, T) for n in (2, 3, 4)], return_exceptions=True
        )
        for answer in answers:
            assert isinstance(answer, ActivationElsewhere), answer
            assert (answer.persistence_id, answer.owner, answer.address) == ("counter", a, "a:1")
        with pytest.raises(ActivationElsewhere):  # later queries too, at once
            await query(ref, 5, T)
        await settle()
        metrics = system_b.metrics
        assert (metrics.faults, metrics.resets, metrics.replays) == (0, 0, 0)  # nothing read
        assert metrics.activations_refused == 1 and not system_b.activations
        assert await query(spawn_actor(system_a, Counter(), "d"), "state", T) == [1]
        assert await cluster.owner("counter") == a
    assert [e.payload["n"] async for e in cluster.engine.replay("counter")] == [1]


async def test_a_fenced_off_write_stops_the_actor_without_answering(cluster: Cluster) -> None:
    _, here = await cluster.instance("a:1")
    b, there = await cluster.instance("b:1")
    async with (
        ActorSystem("a", engine=cluster.engine, placement=here) as system_a,
        ActorSystem("b", engine=cluster.engine, placement=there) as system_b,
    ):
        zombie = spawn_actor(system_a, Counter(reset_on_crash=True), "c")
        assert await query(zombie, 1, T) == [1]
        await cluster.steal(lease_of(system_a), b)  # a stays live, its lease is gone
        answers = await asyncio.gather(
            *[query(zombie, n, T) for n in (2, 3, 4)], return_exceptions=True
        )
        for answer in answers:  # the write refused, the queued ones never run
            assert isinstance(answer, ActivationLost), answer
        with pytest.raises(ActivationLost):
            await query(zombie, 5, T)
        await settle()
        metrics = system_a.metrics
        assert (metrics.faults, metrics.resets, metrics.activations_lost) == (0, 0, 1)
        assert not system_a.activations
        assert await cluster.owner("counter") == b  # a lost lease is not released
        successor = spawn_actor(system_b, Counter(), "c")
        assert await query(successor, 6, T) == [1, 6]
    assert [e.payload["n"] async for e in cluster.engine.replay("counter")] == [1, 6]


async def test_membership_lost_stops_every_activation(cluster: Cluster) -> None:
    a, here = await cluster.instance("a:1")
    b, there = await cluster.instance("b:1")
    async with (
        ActorSystem("a", engine=cluster.engine, placement=here) as system_a,
        ActorSystem("b", engine=cluster.engine, placement=there) as system_b,
    ):
        refs = [spawn_actor(system_a, Counter(f"user-{i}"), f"u{i}") for i in range(3)]
        for ref in refs:
            assert await query(ref, 1, T) == [1]
        await cluster.expire(a)
        await eventually(lambda: not system_a.activations, within=10)
        for ref in refs:
            with pytest.raises(ActivationLost, match="stopped serving"):
                await query(ref, 2, T)
        assert system_a.metrics.activations_lost == 3
        with pytest.raises(ActivationLost):  # no new activation either
            await query(spawn_actor(system_a, Counter("user-9"), "u9"), 1, T)
        for i in range(3):  # taken over by b, with a's writes
            assert await cluster.owner(f"user-{i}") == a
            ref = spawn_actor(system_b, Counter(f"user-{i}"), f"u{i}")
            assert await query(ref, 7, T) == [1, 7]
            assert lease_of_key(system_b, f"user-{i}").taken_over_from == a
            assert await cluster.owner(f"user-{i}") == b


def lease_of_key(system: ActorSystem, key: str) -> Lease:
    for activation in system.activations.values():
        if activation.persistence_id == key and activation.lease is not None:
            return activation.lease
    raise AssertionError(f"no activation of {key!r}")


async def test_a_reset_in_place_keeps_the_lease_and_a_stop_releases_it(cluster: Cluster) -> None:
    iid, placement = await cluster.instance("a:1")
    async with ActorSystem("a", engine=cluster.engine, placement=placement) as system:
        ref = spawn_actor(system, Counter(), "c")
        assert await query(ref, 1, T) == [1]
        before = lease_of(system)
        with pytest.raises(Exception, match="boom"):
            await query(ref, "boom", T)
        assert await query(ref, 2, T) == [1, 2]  # reset, recovered, same activation
        assert system.metrics.resets == 1
        assert lease_of(system) == before and await cluster.owner("counter") == iid
        await stop(ref)
        assert await cluster.owner("counter") is None and not system.activations


async def test_without_placement_nothing_changes() -> None:
    engine = InMemoryEngine(leases=InMemoryLeases())  # no placement: fences never sent
    async with ActorSystem("a", engine=engine) as system:
        assert await query(spawn_actor(system, Counter(), "c"), 1, T) == [1]
        assert system.activations == {}
        await engine.append("counter", [NewEvent("added", {"n": 5})], 1)
