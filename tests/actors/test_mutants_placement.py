"""Guarantees of ``actors/placement.py`` that the placement tests left unpinned (issue 14's
mutation run): each test kills a mutant that survived ``tests/actors/test_placement.py``.

The placement here is the in-memory one wrapped in :class:`Switchable`, which can stop
serving, refuse an acquire with :class:`MembershipLost` or fail a release on demand: the
outcomes the runtime must handle whatever the lease table is (PostgreSQL's own paths are in
``test_placement.py``).
"""

from __future__ import annotations

import logging

import pytest

from actors import ActivationLost, ActorSystem, query, spawn_actor, stop
from persistence import InMemoryEngine
from persistence.errors import MembershipLost
from persistence.leases import HeldElsewhere, Lease
from persistence.placement.memory import InMemoryLeases
from tests.actors.test_placement import Counter

T = 5.0
NEVER = 3600.0
"""A watchdog interval no test reaches: only the per-message check can notice."""


class Switchable:
    """An in-memory placement whose serving, acquire and release can be made to fail."""

    def __init__(self, table: InMemoryLeases) -> None:
        self.inner = table.placement(table.register("a:1", ttl=60))
        self.up = True
        self.acquire_error: Exception | None = None
        self.release_error: Exception | None = None
        self.released: list[Lease] = []

    async def acquire(self, persistence_id: str) -> Lease | HeldElsewhere:
        if self.acquire_error is not None:
            raise self.acquire_error
        return await self.inner.acquire(persistence_id)

    async def release(self, lease: Lease) -> None:
        if self.release_error is not None:
            raise self.release_error
        self.released.append(lease)
        await self.inner.release(lease)

    def serving(self) -> bool:
        return self.up and self.inner.serving()


@pytest.fixture
def table() -> InMemoryLeases:
    return InMemoryLeases()


async def test_a_message_after_serving_stopped_is_not_answered_from_memory(
    table: InMemoryLeases,
) -> None:
    placement = Switchable(table)
    engine = InMemoryEngine(leases=table)
    async with ActorSystem(
        "a", engine=engine, placement=placement, placement_check_interval=NEVER
    ) as system:
        ref = spawn_actor(system, Counter(), "c")
        assert await query(ref, 1, T) == [1]
        placement.up = False  # the watchdog never looks: the delivery itself must check
        with pytest.raises(ActivationLost, match="stopped serving"):
            await query(ref, "state", T)
        assert system.metrics.activations_lost == 1
        assert not system.activations
        assert placement.released == []  # a lost lease is not released


async def test_membership_lost_while_acquiring_refuses_the_activation(
    table: InMemoryLeases,
) -> None:
    placement = Switchable(table)
    placement.acquire_error = MembershipLost("a-1", "its registration expired")
    engine = InMemoryEngine(leases=table)
    async with ActorSystem("a", engine=engine, placement=placement) as system:
        ref = spawn_actor(system, Counter(reset_on_crash=True), "c")
        with pytest.raises(ActivationLost, match="its registration expired"):
            await query(ref, 1, T)
        metrics = system.metrics
        assert (metrics.faults, metrics.resets, metrics.replays) == (0, 0, 0)
        assert metrics.activations_refused == 1 and not system.activations
    assert [e async for e in engine.replay("counter")] == []


async def test_a_failed_release_is_logged_not_raised(
    table: InMemoryLeases, caplog: pytest.LogCaptureFixture
) -> None:
    placement = Switchable(table)
    engine = InMemoryEngine(leases=table)
    async with ActorSystem("a", engine=engine, placement=placement) as system:
        ref = spawn_actor(system, Counter(), "c")
        assert await query(ref, 1, T) == [1]
        placement.release_error = RuntimeError("lease table unreachable")
        with caplog.at_level(logging.WARNING, logger="actors.placement"):
            await stop(ref)
        assert not system.activations
        assert system.metrics.faults == 0
        warnings = [r.getMessage() for r in caplog.records if r.name == "actors.placement"]
        assert warnings == ["releasing the lease of 'counter' failed: lease table unreachable"]
