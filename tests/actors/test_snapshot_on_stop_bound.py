"""A graceful stop never hangs on its snapshot: an engine that does not answer a snapshot
write delays the stop by at most the system's ``snapshot_drain_timeout``, and the snapshot
counts as failed (the journal has everything; the next start replays more)."""

from __future__ import annotations

import asyncio
from typing import Any

from actors import ActorSystem, Every, PersistentActor, PersistentContext, query, spawn_actor
from persistence import InMemoryEngine
from persistence.engine import Json


class SnapshotsNeverAnswer(InMemoryEngine):
    async def save_snapshot(
        self, persistence_id: str, sequence_nr: int, payload: Json, blob: bytes | None = None
    ) -> None:
        await asyncio.Event().wait()


class Counter(PersistentActor[int]):
    snapshot_in_background = True
    snapshot_on_stop = True

    def __init__(self, failures: list[BaseException]) -> None:
        self.persistence_id = "counter/stuck"
        self.snapshot_strategy = Every(1)
        self.failures = failures

    def initial_state(self) -> int:
        return 0

    def on_event(self, state: int, event: Any) -> int:
        return state + 1

    async def on_command(self, state: int, command: Any, ctx: PersistentContext[int]) -> None:
        await ctx.persist({"n": 1})
        ctx.reply(ctx.state)

    def on_snapshot_failure(self, error: BaseException, sequence_nr: int) -> None:
        self.failures.append(error)


async def test_a_stop_waits_for_its_snapshot_at_most_the_drain_timeout() -> None:
    failures: list[BaseException] = []
    engine = SnapshotsNeverAnswer()
    async with asyncio.timeout(10):  # the bound under test is 0.2 s; without it: for ever
        async with ActorSystem("stuck", engine=engine, snapshot_drain_timeout=0.2) as system:
            ref = spawn_actor(system, Counter(failures))
            assert await query(ref, "add", timeout=1.0) == 1
            assert await query(ref, "add", timeout=1.0) == 2
    assert any(isinstance(error, TimeoutError) for error in failures), failures
    assert [e.sequence_nr async for e in engine.replay("counter/stuck")] == [1, 2]
