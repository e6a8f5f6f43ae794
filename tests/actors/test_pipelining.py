"""Pipelined batches (``actors/batching.py``, *Pipelining*): the next batch is decided while
the append before it is in flight; one rule per test.

The engine's ``gate`` holds appends in flight, so what the actor did meanwhile can be seen.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors import (
    ActorCrashed,
    ActorSystem,
    Every,
    PersistentContext,
    query,
    spawn_actor,
    spawn_persistent,
)
from persistence import NewEvent, StoredEvent
from persistence.errors import ConcurrencyConflict
from tests.actors.batching_support import (
    CountingEngine,
    InjectedWriteFailure,
    Ledger,
    PipelinedTally,
    T,
    ask_all,
    journal_of,
)
from tests.actors.conftest import settle


async def ask_held(engine: CountingEngine, ref: Any, commands: list[Any]) -> list[object]:
    """``ask_all`` with every append held until the actor is idle: the batch after the first
    is then wholly decided while the first append is in flight."""
    engine.gate = asyncio.Event()
    asking = asyncio.ensure_future(ask_all(ref, commands))
    await settle()
    engine.gate.set()
    engine.gate = None
    return await asking


async def test_the_next_batch_is_decided_while_the_append_before_is_in_flight() -> None:
    engine = CountingEngine()
    decided: list[Any] = []

    class Watched(Ledger):
        async def on_command(self, state: list[int], command: Any,
                             ctx: PersistentContext[list[int]]) -> None:
            decided.append(command)
            await super().on_command(state, command, ctx)

    async with ActorSystem("p", engine=engine) as system:
        ref = spawn_actor(system, Watched(max_batch=2, pipeline=True))
        await query(ref, ("r",), T)
        decided.clear()
        engine.gate = asyncio.Event()
        commands: list[Any] = [("w", 1), ("w", 2), ("r",), ("w", 3), ("w", 4), ("w", 5)]
        futures = [asyncio.ensure_future(query(ref, c, T)) for c in commands]
        await settle()
        assert engine.appends == 1  # the first batch's append, held at the gate...
        assert decided == commands[:4]  # ...while the second batch was decided
        assert not any(f.done() for f in futures)  # the read waits: its state is not durable
        engine.gate.set()
        results = await asyncio.gather(*futures)
    assert results == [("ok", [1], 1), ("ok", [1, 2], 2), ("read", [1, 2], 2),
                       ("ok", [1, 2, 3], 3), ("ok", [1, 2, 3, 4], 4), ("ok", [1, 2, 3, 4, 5], 5)]
    assert await journal_of(engine) == [1, 2, 3, 4, 5]
    assert engine.appends == 3


async def test_appends_stay_one_after_the_other() -> None:
    """The batch decided meanwhile is written only once the append before it returned."""
    engine = CountingEngine()
    async with ActorSystem("p", engine=engine) as system:
        ref = spawn_actor(system, Ledger(max_batch=2, pipeline=True))
        await query(ref, ("r",), T)
        engine.gate = asyncio.Event()
        futures = [asyncio.ensure_future(query(ref, ("w", n), T)) for n in range(6)]
        for _ in range(5):
            await settle()
            assert engine.appends == 1
        engine.gate.set()
        await asyncio.gather(*futures)
    assert await journal_of(engine) == list(range(6))


async def test_a_failed_append_fails_the_batch_decided_meanwhile_and_writes_nothing_of_it(
) -> None:
    engine = CountingEngine()
    ledger = Ledger(max_batch=2, pipeline=True)
    async with ActorSystem("p", engine=engine) as system:
        ref = spawn_actor(system, ledger)
        await query(ref, ("w", 1), T)
        replies = await ask_held(engine, ref, [("w", 2), ("poison", 3), ("w", 4), ("r",),
                                               ("w", 5)])
        after = await query(ref, ("r",), T)
    failed = ("crashed", "InjectedWriteFailure")
    assert replies[:4] == [failed] * 4  # the poisoned batch and the one decided meanwhile
    assert replies[4] == ("ok", [1, 5], 2)  # decided after the failure, on the recovered state
    assert await journal_of(engine) == [1, 5]
    assert after == ("read", [1, 5], 2)
    assert [type(e) for _, e in ledger.crashes] == [InjectedWriteFailure]  # supervised once


async def test_an_append_that_landed_then_failed_is_the_journals_truth() -> None:
    engine = CountingEngine(lands=True)
    async with ActorSystem("p", engine=engine) as system:
        ref = spawn_actor(system, Ledger(max_batch=2, pipeline=True))
        await query(ref, ("r",), T)
        replies = await ask_held(engine, ref, [("w", 1), ("poison", 2), ("w", 3), ("w", 4)])
        after = await query(ref, ("r",), T)
    assert replies == [("crashed", "InjectedWriteFailure")] * 4
    assert await journal_of(engine) == [1, 2]  # written, then the connection was lost
    assert after == ("read", [1, 2], 2)  # recovered from the journal, not the lost batch


class Outsider(CountingEngine):
    """Another writer appends just before this actor's first ``conflicts`` appends."""

    def __init__(self, conflicts: int) -> None:
        super().__init__()
        self.conflicts = conflicts

    async def append(self, persistence_id: str, events: Any, expected: int,
                     **kw: Any) -> list[StoredEvent]:
        if self.conflicts and expected > 0:
            self.conflicts -= 1
            await CountingEngine.__mro__[1].append(  # type: ignore[attr-defined]
                self, persistence_id, [NewEvent("n", {"n": 100})], expected)
        return await super().append(persistence_id, events, expected, **kw)


async def test_with_retry_a_conflict_decides_both_batches_again_as_one() -> None:
    engine = Outsider(conflicts=1)

    class Retrying(Ledger):
        retry_on_conflict = True

    async with ActorSystem("p", engine=engine) as system:
        ref = spawn_actor(system, Retrying(max_batch=2, pipeline=True))
        await query(ref, ("w", 1), T)
        replies = await ask_held(engine, ref, [("w", 2), ("r",), ("w", 3), ("w", 4)])
        assert system.metrics.conflict_retries == 1
    assert replies == [("ok", [1, 100, 2], 3), ("read", [1, 100, 2], 3),
                       ("ok", [1, 100, 2, 3], 4), ("ok", [1, 100, 2, 3, 4], 5)]
    assert await journal_of(engine) == [1, 100, 2, 3, 4]


async def test_without_retry_a_conflict_fails_both_batches() -> None:
    engine = Outsider(conflicts=1)
    async with ActorSystem("p", engine=engine) as system:
        ref = spawn_actor(system, Ledger(max_batch=2, pipeline=True))
        await query(ref, ("w", 1), T)
        replies = await ask_held(engine, ref, [("w", 2), ("w", 3), ("w", 4)])
        assert replies == [("crashed", "ConcurrencyConflict")] * 3
        assert await query(ref, ("w", 5), T) == ("ok", [1, 100, 5], 3)


async def test_a_snapshot_never_holds_an_event_that_was_not_durable_at_its_number() -> None:
    """Every(1) falls due at every event: the snapshot is asked for once no later batch holds
    undurable events, and holds exactly the events up to its sequence number."""
    engine = CountingEngine()
    saved: list[tuple[int, Any]] = []
    save = engine.save_snapshot

    async def watch(persistence_id: str, sequence_nr: int, payload: Any,
                    *args: Any, **kw: Any) -> None:
        saved.append((sequence_nr, payload))
        await save(persistence_id, sequence_nr, payload, *args, **kw)

    engine.save_snapshot = watch  # type: ignore[method-assign]

    class Snapshotting(Ledger):
        snapshot_strategy = Every(1)

    async with ActorSystem("p", engine=engine) as system:
        ref = spawn_actor(system, Snapshotting(max_batch=3, pipeline=True))
        await query(ref, ("r",), T)
        await ask_all(ref, [("w", n) for n in range(1, 11)])
    assert saved
    for sequence_nr, payload in saved:
        assert payload["state"] == list(range(1, sequence_nr + 1)), (sequence_nr, payload)
    assert saved[-1][0] == 10


async def test_a_fault_ends_the_run_after_what_came_before_it_is_durable() -> None:
    engine = CountingEngine()
    ledger = Ledger(max_batch=2, pipeline=True)
    async with ActorSystem("p", engine=engine) as system:
        ref = spawn_actor(system, ledger)
        await query(ref, ("r",), T)
        replies = await ask_all(ref, [("w", 1), ("w", 2), ("w", 3), ("boom_after", 4),
                                      ("w", 5)])
    assert replies[:3] == [("ok", [1], 1), ("ok", [1, 2], 2), ("ok", [1, 2, 3], 3)]
    assert replies[3] == ("crashed", "Boom")
    assert replies[4] == ("ok", [1, 2, 3, 4, 5], 5)  # boom_after's event was written
    assert await journal_of(engine) == [1, 2, 3, 4, 5]


async def test_the_functional_api_pipelines_too() -> None:
    engine = CountingEngine()

    async def handler(state: int, msg: Any, ctx: PersistentContext[int]) -> int:
        if ctx.recovering:
            return state + int(msg["n"])
        if msg == "get":
            ctx.reply(state)
            return state
        await ctx.persist({"n": msg})
        ctx.reply(state + msg)
        return state + msg

    async with ActorSystem("p", engine=engine) as system:
        ref = spawn_persistent(system, handler, "sum", "sum", initial_state=0, max_batch=2,
                               pipeline=True)
        await query(ref, "get", T)
        replies = await ask_all(ref, [1, 2, 3, 4, 5])
    assert replies == [1, 3, 6, 10, 15]
    assert engine.appends == 3


@pytest.mark.parametrize("value", [1, "yes", None])
def test_pipeline_must_be_a_bool(value: Any) -> None:
    with pytest.raises(TypeError, match="pipeline must be a bool"):
        spawn_persistent(ActorSystem("p", engine=CountingEngine()), lambda s, m, c: s, "x",
                         pipeline=value)


async def test_a_batch_without_a_conflict_is_unaffected_by_an_unrelated_error_type() -> None:
    assert not issubclass(InjectedWriteFailure, ConcurrencyConflict)
    engine = CountingEngine()
    async with ActorSystem("p", engine=engine) as system:
        ref = spawn_actor(system, Ledger(max_batch=2, pipeline=True))
        with pytest.raises(ActorCrashed):
            await query(ref, ("poison", 1), T)
        assert await query(ref, ("w", 2), T) == ("ok", [2], 1)



@pytest.mark.parametrize("turns", range(0, 40, 3))
async def test_closing_the_system_mid_pipeline_settles_every_query(turns: int) -> None:
    engine = CountingEngine()
    system = ActorSystem("stop", engine=engine)
    await system.__aenter__()
    ref = spawn_actor(system, PipelinedTally("s"))
    await query(ref, 0, T)
    queries = [asyncio.ensure_future(query(ref, n, T)) for n in range(40)]
    for _ in range(turns):
        await asyncio.sleep(0)
    await asyncio.wait_for(system.__aexit__(None, None, None), T)
    _, pending = await asyncio.wait(queries, timeout=T)
    assert not pending
    answered = [q.result() for q in queries if not q.cancelled() and q.exception() is None]
    assert answered == sorted(answered)  # in order, each after the one before
    durable = [e.payload["n"] async for e in engine.replay("tally/s")]
    assert sum(durable) >= (answered[-1] if answered else 0)  # nothing acknowledged unwritten
