"""Command batching (``actors/batching.py``): the exact semantics, one rule per test.

Every test queues its commands before the actor runs again (``ask_all``), so the batches
are the mailbox's contents cut at ``max_batch`` and at faults: deterministic.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors import (
    ActivationLost,
    ActorCrashed,
    ActorSystem,
    ConflictPersists,
    Every,
    PersistentContext,
    query,
    spawn_actor,
    spawn_persistent,
)
from persistence import NewEvent
from persistence.leases import Lease
from persistence.placement.memory import InMemoryLeases
from tests.actors.batching_support import (
    BatchedTally,
    CallerCrashed,
    CountingEngine,
    InjectedWriteFailure,
    Ledger,
    PipelinedTally,
    T,
    Tally,
    ask_all,
    journal_of,
)
from tests.actors.conftest import settle


async def test_queued_commands_cost_one_append_per_batch() -> None:
    engine = CountingEngine()
    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, Ledger(max_batch=10))
        assert await query(ref, ("r",), T) == ("read", [], 0)
        replies = await ask_all(ref, [("w", 1)] * 100)
    assert engine.appends == 10  # 100 queued commands, batches of 10: 10 appends, not 100
    assert replies == [("ok", [1] * n, n) for n in range(1, 101)]
    assert await journal_of(engine) == [1] * 100


async def test_off_by_default_one_append_per_command() -> None:
    engine = CountingEngine()
    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, Ledger(max_batch=1))
        await ask_all(ref, [("w", 1)] * 20)
    assert engine.appends == 20


async def test_replies_wait_for_the_write_and_a_read_at_the_head_does_not() -> None:
    engine = CountingEngine()
    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, Ledger(max_batch=10))
        await query(ref, ("w", 7), T)
        engine.gate = asyncio.Event()
        commands: list[Any] = [("r",), ("w", 1), ("r",), ("w", 2)]
        futures = [asyncio.ensure_future(query(ref, c, T)) for c in commands]
        await settle()
        assert engine.appends == 2  # the batch's append is in flight, held at the gate
        assert [f.done() for f in futures] == [True, False, False, False]
        assert futures[0].result() == ("read", [7], 1)  # only durable events: sent at once
        engine.gate.set()
        results = await asyncio.gather(*futures)
    assert results[1:] == [("ok", [7, 1], 2), ("read", [7, 1], 2), ("ok", [7, 1, 2], 3)]


async def test_a_failed_write_acknowledges_nothing_and_restores_the_state() -> None:
    engine = CountingEngine()
    ledger = Ledger(max_batch=10)
    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, ledger)
        await query(ref, ("w", 1), T)
        replies = await ask_all(ref, [("w", 2), ("r",), ("poison", 3), ("w", 4)])
        after = await query(ref, ("r",), T)
    failed = ("crashed", "InjectedWriteFailure")
    assert replies == [failed, failed, failed, failed]  # one batch, one failed append
    assert await journal_of(engine) == [1]
    assert after == ("read", [1], 1)  # the state before the batch
    assert [type(e) for _, e in ledger.crashes] == [InjectedWriteFailure]  # supervised once


async def test_after_a_failed_write_resumed_the_actor_recovers_before_its_next_command() -> None:
    engine = CountingEngine()

    class Resuming(Ledger):
        def on_crash(self, msg: object, error: BaseException, ctx: Any) -> Any:
            from actors import Decision

            return Decision.RESUME

    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, Resuming(max_batch=10))
        await query(ref, ("w", 1), T)
        await ask_all(ref, [("w", 2), ("poison", 3)])
        assert await query(ref, ("w", 4), T) == ("ok", [1, 4], 2)


async def test_a_write_that_landed_then_failed_is_the_journals_truth() -> None:
    """The uncertain rule: every caller got the failure, yet the events are durable; the
    actor recovers from the journal, so its next command sees them."""
    engine = CountingEngine(lands=True)
    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, Ledger(max_batch=10))
        replies = await ask_all(ref, [("w", 2), ("poison", 3)])
        assert replies == [("crashed", "InjectedWriteFailure")] * 2
        assert await query(ref, ("r",), T) == ("read", [2, 3], 2)


async def test_a_raising_handler_ends_the_batch_as_one_at_a_time_would() -> None:
    """The commands before it are written and answered; its own persisted event too (its
    persist had returned, as it would have one at a time); the rest follow supervision."""
    journals, answers = [], []
    for max_batch in (1, 10):
        engine = CountingEngine()
        ledger = Ledger(max_batch=max_batch)
        async with ActorSystem("b", engine=engine) as system:
            ref = spawn_actor(system, ledger)
            await query(ref, ("r",), T)
            answers.append(await ask_all(
                ref, [("w", 1), ("boom_after", 2), ("w", 3), ("boom",), ("r",)]))
        journals.append(await journal_of(engine))
        assert len(ledger.crashes) == 2
    assert answers[0] == answers[1] == [
        ("ok", [1], 1), ("crashed", "Boom"), ("ok", [1, 2, 3], 3), ("crashed", "Boom"),
        ("read", [1, 2, 3], 3),
    ]
    assert journals[0] == journals[1] == [1, 2, 3]


async def test_two_persists_in_one_handler_are_staged_in_order() -> None:
    engine = CountingEngine()
    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, Ledger(max_batch=10))
        await query(ref, ("r",), T)
        replies = await ask_all(ref, [("ww", 1, 2), ("w", 3)])
    assert replies == [("ok", [1, 2], 2), ("ok", [1, 2, 3], 3)]
    assert engine.appends == 1


class Outsider(CountingEngine):
    """Another writer appends to the same persistence id just before the next ``conflicts``
    appends of the actor: they meet a conflict."""

    def __init__(self, conflicts: int) -> None:
        super().__init__()
        self.conflicts = conflicts

    async def append(self, persistence_id: str, events: Any, expected: int, **kw: Any) -> Any:
        if self.conflicts and expected > 0:
            self.conflicts -= 1
            await InMemoryAppend.append(self, persistence_id, [NewEvent("n", {"n": 100})],
                                        expected)
        return await super().append(persistence_id, events, expected, **kw)


InMemoryAppend = CountingEngine.__mro__[1]


async def test_retry_on_conflict_decides_the_whole_batch_again() -> None:
    engine = Outsider(conflicts=1)

    class Retrying(Ledger):
        retry_on_conflict = True

    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, Retrying(max_batch=10))
        await query(ref, ("w", 1), T)
        replies = await ask_all(ref, [("w", 2), ("r",), ("w", 3)])
        assert system.metrics.conflict_retries == 1
    assert replies == [("ok", [1, 100, 2], 3), ("read", [1, 100, 2], 3),
                       ("ok", [1, 100, 2, 3], 4)]
    assert await journal_of(engine) == [1, 100, 2, 3]


async def test_a_second_conflict_fails_every_command_of_the_batch() -> None:
    engine = Outsider(conflicts=2)

    class Retrying(Ledger):
        retry_on_conflict = True

    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, Retrying(max_batch=10))
        await query(ref, ("w", 1), T)
        futures = [asyncio.ensure_future(query(ref, c, T)) for c in [("w", 2), ("w", 3)]]
        for future in futures:
            with pytest.raises(ActorCrashed) as crashed:
                await future
            assert isinstance(crashed.value.error, ConflictPersists)
    assert await journal_of(engine) == [1, 100, 100]


async def test_without_retry_a_conflict_fails_the_batch() -> None:
    engine = Outsider(conflicts=1)
    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, Ledger(max_batch=10))
        await query(ref, ("w", 1), T)
        replies = await ask_all(ref, [("w", 2), ("w", 3)])
        assert replies == [("crashed", "ConcurrencyConflict")] * 2
        assert await query(ref, ("w", 4), T) == ("ok", [1, 100, 4], 3)


class Snapshotting(Ledger):
    snapshot_strategy = Every(5)


async def test_the_snapshot_strategy_is_asked_after_the_batch_and_snapshots_its_end() -> None:
    engine = CountingEngine()
    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, Snapshotting(max_batch=12))
        await query(ref, ("r",), T)
        await ask_all(ref, [("w", 1)] * 12)
    snapshot = await engine.load_snapshot("ledger")
    assert snapshot is not None and snapshot.sequence_nr == 12


class ExplicitSnapshot(Ledger):
    async def on_command(self, state: list[int], command: Any,
                         ctx: PersistentContext[list[int]]) -> None:
        if command == ("snap",):
            ctx.reply(await ctx.snapshot())
            return
        await super().on_command(state, command, ctx)


async def test_an_explicit_snapshot_in_a_batch_writes_what_it_staged_first() -> None:
    engine = CountingEngine()
    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, ExplicitSnapshot(max_batch=10))
        await query(ref, ("r",), T)
        replies = await ask_all(ref, [("w", 1), ("w", 2), ("snap",), ("w", 3)])
    assert replies == [("ok", [1], 1), ("ok", [1, 2], 2), True, ("ok", [1, 2, 3], 3)]
    snapshot = await engine.load_snapshot("ledger")
    assert snapshot is not None and snapshot.sequence_nr == 2
    assert engine.appends == 2


async def test_commands_queued_during_recovery_are_one_batch() -> None:
    engine = CountingEngine()
    await engine.append("ledger", [NewEvent("n", {"n": 5})], 0)
    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, Ledger(max_batch=10))
        replies = await ask_all(ref, [("w", 1), ("r",), ("w", 2)])
    assert replies == [("ok", [5, 1], 2), ("read", [5, 1], 2), ("ok", [5, 1, 2], 3)]
    assert engine.appends == 2


async def test_the_functional_api_batches_too() -> None:
    engine = CountingEngine()

    async def handler(state: int, msg: Any, ctx: PersistentContext[int]) -> int:
        if ctx.recovering:
            return state + int(msg["n"])
        if msg == "read":
            ctx.reply((state, ctx.sequence_nr))
            return state
        await ctx.persist({"n": msg})
        ctx.reply(state + msg)
        return state + msg

    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_persistent(system, handler, "sum", initial_state=0, max_batch=50)
        await query(ref, "read", T)
        replies = await asyncio.gather(*(query(ref, 1, T) for _ in range(100)),
                                       query(ref, "read", T))
    assert replies == [*range(1, 101), (100, 100)]
    assert engine.appends == 2


async def test_an_unstorable_event_fails_its_own_command_only() -> None:
    engine = CountingEngine()
    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, Ledger(max_batch=10))
        await query(ref, ("r",), T)
        replies = await ask_all(ref, [("w", 1), ("w", float("nan")), ("w", 2)])
    assert replies == [("ok", [1], 1), ("crashed", "SerializationError"), ("ok", [1, 2], 2)]


async def test_the_batch_append_carries_the_fence_and_a_fenced_off_batch_answers_nothing(
) -> None:
    table = InMemoryLeases()
    engine = CountingEngine(leases=table)
    a = table.register("a:1", ttl=60)
    b = table.register("b:1", ttl=60)
    async with ActorSystem("a", engine=engine, placement=table.placement(a)) as system:
        ref = spawn_actor(system, Ledger(max_batch=10))
        assert await query(ref, ("w", 1), T) == ("ok", [1], 1)
        (activation,) = system.activations.values()
        lease = activation.lease
        assert lease is not None and engine.fences == [lease]
        assert table.release(lease)  # an operator frees it behind the owner's back
        assert isinstance(table.acquire(lease.key, b), Lease)
        answers = await asyncio.gather(*(query(ref, ("w", n), T) for n in (2, 3, 4)),
                                       return_exceptions=True)
        assert engine.fences == [lease, lease]  # one append for the batch, fenced
        for answer in answers:  # refused by the fence: nothing answered from memory
            assert isinstance(answer, ActivationLost), answer
        assert system.metrics.faults == 0
    assert await journal_of(engine) == [1]


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_max_batch_must_be_a_positive_int(value: Any) -> None:
    from actors.batching import check_max_batch

    with pytest.raises(ValueError, match="max_batch"):
        check_max_batch(value)


@pytest.mark.parametrize("turns", range(0, 30, 3))
@pytest.mark.parametrize("actor", [BatchedTally, PipelinedTally])
def test_cancellation_in_a_batch_always_lets_asyncio_run_return(
    turns: int, actor: type[Tally]
) -> None:
    """As ``test_cancellation.py``, with batched actors: a caller crashing at any point of
    a batch (deciding, writing, replying; pipelined: with an append in flight while the
    next batch is decided) ends every actor's task and every append's."""
    engine = CountingEngine()

    async def main() -> None:
        system = ActorSystem("crash", engine=engine)
        await system.__aenter__()
        refs = [spawn_actor(system, actor(f"t{i}")) for i in range(10)]
        queries = [asyncio.ensure_future(query(ref, n, T))
                   for n, ref in enumerate(refs) for _ in range(20)]
        assert len(queries) == 200
        for _ in range(turns):
            await asyncio.sleep(0)
        raise CallerCrashed

    with pytest.raises(CallerCrashed):
        asyncio.run(main())


async def test_a_batch_takes_no_more_commands_once_it_staged_max_batch_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import actors.batching

    monkeypatch.setattr(actors.batching, "MAX_BATCH_EVENTS", 5)
    engine = CountingEngine()
    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, Ledger(max_batch=100))
        await query(ref, ("r",), T)
        replies = await ask_all(ref, [("ww", 1, 1)] * 10)  # two events each
    assert engine.appends == 4  # 3 commands (6 events), 3, 3, then the last one
    assert replies[-1] == ("ok", [1] * 20, 20)
