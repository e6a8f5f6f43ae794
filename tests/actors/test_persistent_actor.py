"""The class API end to end on the in-memory engine: persist, recover, stash, conflicts, faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from actors import (
    ActorCrashed,
    ActorNotFound,
    ActorSystem,
    Decision,
    NoEngineConfigured,
    PersistentActor,
    PersistentContext,
    dispatch,
    query,
    spawn,
    spawn_actor,
)
from persistence import InMemoryEngine, NewEvent
from persistence.engine import MAX_SEQUENCE_NR, StoredEvent
from persistence.errors import (
    ConcurrencyConflict,
    JournalIntegrityError,
    SerializationError,
    StorageUnavailable,
)

T = 5.0  # query timeout: generous, these tests are never timed


@dataclass(frozen=True)
class Get:
    pass


@dataclass(frozen=True)
class LastRecovery:
    pass


class Ledger(PersistentActor[list[int]]):
    """Commands: an int n persists {"type": "added", "n": n} and replies the new state;
    a list persists one event per item with persist_all; Get() replies (state, sequence_nr)."""

    def __init__(self, persistence_id: str = "ledger", snapshot_every: int | None = None) -> None:
        self.persistence_id = persistence_id
        self.snapshot_every = snapshot_every
        self.crashes: list[tuple[object, BaseException]] = []
        self.recovered_with: list[list[int]] = []
        self.decision: Decision | None = None
        self.snapshot_failures: list[tuple[BaseException, int]] = []

    def initial_state(self) -> list[int]:
        return []

    def on_event(self, state: list[int], event: Any) -> list[int]:
        if event.get("poison"):
            raise ValueError("poisoned event")
        return [*state, event["n"]]

    async def on_command(
        self, state: list[int], command: Any, ctx: PersistentContext[list[int]]
    ) -> None:
        if isinstance(command, Get):
            ctx.reply((ctx.state, ctx.sequence_nr))
        elif isinstance(command, LastRecovery):
            ctx.reply(ctx.last_recovery)
        elif command == "snapshot":
            ctx.reply(await ctx.snapshot())
        elif isinstance(command, list):
            await ctx.persist_all({"type": "added", "n": n} for n in command)
            ctx.reply(ctx.state)
        else:
            await ctx.persist({"type": "added", "n": command})
            ctx.reply(ctx.state)

    def on_recovery_complete(self, state: list[int]) -> None:
        self.recovered_with.append(list(state))

    def tags_for(self, event: Any) -> list[str]:
        return ["even"] if event["n"] % 2 == 0 else ["odd"]

    def on_crash(
        self, msg: object, error: BaseException, ctx: PersistentContext[list[int]]
    ) -> Decision | None:
        self.crashes.append((msg, error))
        return self.decision

    def on_snapshot_failure(self, error: BaseException, sequence_nr: int) -> None:
        self.snapshot_failures.append((error, sequence_nr))


async def _state(ref: Any) -> tuple[list[int], int]:
    result: tuple[list[int], int] = await query(ref, Get(), T)
    return result


async def test_persist_replies_after_the_write_and_a_restart_replays() -> None:
    engine = InMemoryEngine()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, Ledger(), "ledger")
        assert await query(ref, 1, T) == [1]
        assert await query(ref, [2, 3], T) == [1, 2, 3]
        assert await _state(ref) == ([1, 2, 3], 3)
    stored = [(e.sequence_nr, e.type, e.version, e.payload) async for e in engine.replay("ledger")]
    assert stored == [(i, "added", 1, {"type": "added", "n": i}) for i in (1, 2, 3)]

    actor = Ledger()
    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, actor, "ledger")
        assert await _state(ref) == ([1, 2, 3], 3)
        assert await query(ref, 4, T) == [1, 2, 3, 4]
        assert actor.recovered_with == [[1, 2, 3]]
        recovery = system.metrics
        assert recovery.replays == 1 and recovery.events_replayed == 3
        assert system.metrics.persists == 1
        assert system.metrics.persist_seconds.count == 1
        assert system.metrics.replay_seconds.count == 1


async def test_tags_are_given_per_event_in_persist_all() -> None:
    engine = InMemoryEngine()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, Ledger(), "ledger")
        await query(ref, [1, 2, 3, 4], T)
    assert [e.payload["n"] async for e in engine.events_by_tag("even")] == [2, 4]
    assert [e.payload["n"] async for e in engine.events_by_tag("odd")] == [1, 3]


class GatedEngine(InMemoryEngine):
    """Holds recovery (highest_sequence_nr) and appends until the test opens the gates."""

    def __init__(self) -> None:
        super().__init__()
        self.recovery_gate = asyncio.Event()
        self.recovery_gate.set()
        self.append_gate = asyncio.Event()
        self.append_gate.set()
        self.appending = asyncio.Event()

    async def highest_sequence_nr(self, persistence_id: str) -> int:
        await self.recovery_gate.wait()
        return await super().highest_sequence_nr(persistence_id)

    async def append(
        self, persistence_id: str, events: Sequence[NewEvent], expected_sequence_nr: int
    ) -> list[StoredEvent]:
        self.appending.set()
        await self.append_gate.wait()
        return await super().append(persistence_id, events, expected_sequence_nr)


async def test_commands_during_a_slow_recovery_are_stashed_and_handled_in_order() -> None:
    engine = GatedEngine()
    await engine.append("ledger", [NewEvent("added", {"n": -1})], 0)
    engine.recovery_gate.clear()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, Ledger(), "ledger")
        for n in range(1000):
            dispatch(ref, n)
        await asyncio.sleep(0)
        engine.recovery_gate.set()
        state, seq = await _state(ref)
    assert state == [-1, *range(1000)]
    assert seq == 1001


async def test_commands_during_a_persist_wait_for_it() -> None:
    engine = GatedEngine()
    engine.append_gate.clear()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, Ledger(), "ledger")
        first = asyncio.ensure_future(query(ref, 1, T))
        await engine.appending.wait()
        later = [asyncio.ensure_future(query(ref, n, T)) for n in (2, 3)]
        get = asyncio.ensure_future(_state(ref))
        await asyncio.sleep(0.01)
        assert not first.done() and not get.done()
        engine.append_gate.set()
        assert await first == [1]
        assert [await f for f in later] == [[1, 2], [1, 2, 3]]
        assert await get == ([1, 2, 3], 3)


async def test_a_fault_after_k_replayed_events_goes_to_supervision() -> None:
    engine = InMemoryEngine()
    events = [NewEvent("added", {"n": n}) for n in range(4)]
    events.insert(2, NewEvent("added", {"n": 99, "poison": True}))
    await engine.append("ledger", events, 0)
    actor = Ledger()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, actor, "ledger")
        with pytest.raises(ActorNotFound):
            for _ in range(100):  # the fault stops the actor (default decision in recovery)
                await _state(ref)
                await asyncio.sleep(0.01)
    assert len(actor.crashes) == 1
    msg, error = actor.crashes[0]
    assert msg is None
    assert isinstance(error, ValueError)
    assert any("event #3" in note for note in error.__notes__)
    assert actor.recovered_with == []


async def test_a_snapshot_plus_the_events_after_it_equal_a_full_replay() -> None:
    engine = InMemoryEngine()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, Ledger(snapshot_every=3), "ledger")
        for n in range(7):
            await query(ref, n, T)
    snapshot = await engine.load_snapshot("ledger")
    assert snapshot is not None and snapshot.sequence_nr == 6

    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, Ledger(snapshot_every=3), "ledger")
        from_snapshot = await _state(ref)
        report = await query(ref, LastRecovery(), T)
    assert (report.snapshot_sequence_nr, report.events_replayed, report.sequence_nr) == (6, 1, 7)

    await engine.delete_snapshots("ledger")
    async with ActorSystem("c", engine=engine) as system:
        ref = spawn_actor(system, Ledger(), "ledger")
        assert await _state(ref) == from_snapshot == (list(range(7)), 7)
        report = await query(ref, LastRecovery(), T)
    assert (report.snapshot_sequence_nr, report.events_replayed) == (None, 7)


async def test_snapshot_every_counts_events_exactly_across_persist_all() -> None:
    engine = InMemoryEngine()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, Ledger(snapshot_every=5), "ledger")
        for n in range(4):
            await query(ref, n, T)
        assert await engine.load_snapshot("ledger") is None
        await query(ref, [4, 5, 6], T)  # seq 5, 6, 7: the snapshot belongs at 5
        snapshot = await engine.load_snapshot("ledger")
        assert snapshot is not None
        assert snapshot.sequence_nr == 5
        assert snapshot.payload == {"snapshot_version": 1, "state": [0, 1, 2, 3, 4]}
        await query(ref, [7, 8, 9, 10, 11, 12, 13], T)  # seq 8..14: the snapshot is at 10
        latest = await engine.load_snapshot("ledger")
        assert latest is not None and latest.sequence_nr == 10
        assert latest.payload["state"] == list(range(10))
        # a batch crossing two boundaries saves the later one only: recovery uses the latest
        await query(ref, list(range(14, 25)), T)  # seq 15..25: due at 15, 20 and 25
        assert (await engine.load_snapshot("ledger", max_sequence_nr=24)) == latest
        final = await engine.load_snapshot("ledger")
        assert final is not None and final.sequence_nr == 25
        assert final.payload["state"] == list(range(25))


async def test_an_explicit_snapshot_is_used_by_the_next_recovery() -> None:
    engine = InMemoryEngine()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, Ledger(), "ledger")
        await query(ref, [1, 2, 3], T)
        assert await query(ref, "snapshot", T) is True
        await query(ref, 4, T)
    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, Ledger(), "ledger")
        report = await query(ref, LastRecovery(), T)
        assert (report.snapshot_sequence_nr, report.events_replayed) == (3, 1)
        assert await _state(ref) == ([1, 2, 3, 4], 4)


class EveryThird(Ledger):
    def snapshot_when(self, sequence_nr: int, state: list[int], event: Any) -> bool:
        return bool(event["n"] == 42)


async def test_snapshot_when_decides_per_event() -> None:
    engine = InMemoryEngine()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, EveryThird(), "ledger")
        await query(ref, [1, 42, 3], T)
    snapshot = await engine.load_snapshot("ledger")
    assert snapshot is not None and snapshot.sequence_nr == 2


class FlakyEngine(InMemoryEngine):
    """Fails the next append or snapshot save on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_appends = 0
        self.fail_snapshots = 0

    async def append(
        self, persistence_id: str, events: Sequence[NewEvent], expected_sequence_nr: int
    ) -> list[StoredEvent]:
        if self.fail_appends:
            self.fail_appends -= 1
            raise StorageUnavailable("storage down (injected)")
        return await super().append(persistence_id, events, expected_sequence_nr)

    async def save_snapshot(
        self, persistence_id: str, sequence_nr: int, payload: Any, blob: bytes | None = None
    ) -> None:
        if self.fail_snapshots:
            self.fail_snapshots -= 1
            raise StorageUnavailable("snapshot store down (injected)")
        await super().save_snapshot(persistence_id, sequence_nr, payload, blob)


class Careful(Ledger):
    """Catches a failed persist and replies what it sees afterwards."""

    async def on_command(
        self, state: list[int], command: Any, ctx: PersistentContext[list[int]]
    ) -> None:
        if isinstance(command, tuple):
            try:
                await ctx.persist_all({"type": "added", "n": n} for n in command)
            except StorageUnavailable as exc:
                snapshotted = await ctx.snapshot()  # refused: the write may have landed
                ctx.reply(("failed", str(exc), ctx.state, ctx.sequence_nr, snapshotted))
                return
            ctx.reply(("ok", ctx.state, ctx.sequence_nr))
        else:
            await super().on_command(state, command, ctx)


async def test_a_failed_write_leaves_state_and_sequence_nr_untouched() -> None:
    engine = FlakyEngine()
    actor = Careful()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, actor, "ledger")
        await query(ref, 1, T)
        engine.fail_appends = 1
        failed = await query(ref, (2, 3), T)
        assert failed == ("failed", "storage down (injected)", [1], 1, False)
        assert "no snapshot until the actor recovered" in str(actor.snapshot_failures[0][0])
        assert await query(ref, (2, 3), T) == ("ok", [1, 2, 3], 3)
        assert actor.recovered_with == [[], [1]]  # the ambiguous write made it recover first
    assert await engine.load_snapshot("ledger") is None
    assert [e.sequence_nr async for e in engine.replay("ledger")] == [1, 2, 3]


async def test_a_failed_write_goes_to_supervision() -> None:
    engine = FlakyEngine()
    actor = Ledger()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, actor, "ledger")
        await query(ref, 1, T)
        engine.fail_appends = 1
        with pytest.raises(ActorCrashed) as info:
            await query(ref, 2, T)
        assert isinstance(info.value.error, StorageUnavailable)
        assert await _state(ref) == ([1], 1)  # reset by default: recovered, nothing lost
        assert [(m, type(e)) for m, e in actor.crashes] == [(2, StorageUnavailable)]
        assert len(actor.recovered_with) == 2


async def test_a_conflict_recovers_from_the_journal_and_never_overwrites() -> None:
    engine = InMemoryEngine()
    actor = Ledger()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, actor, "ledger")
        await query(ref, [1, 2], T)
        await engine.append("ledger", [NewEvent("added", {"n": 100})], 2)  # another writer
        with pytest.raises(ActorCrashed) as info:
            await query(ref, 3, T)
        assert isinstance(info.value.error, ConcurrencyConflict)
        assert info.value.error.actual_sequence_nr == 3
        assert await _state(ref) == ([1, 2, 100], 3)
        assert await query(ref, 4, T) == [1, 2, 100, 4]
    assert [e.payload["n"] async for e in engine.replay("ledger")] == [1, 2, 100, 4]
    assert len(actor.recovered_with) == 2


async def test_a_resumed_conflict_still_recovers_before_the_next_command() -> None:
    engine = InMemoryEngine()
    actor = Ledger()
    actor.decision = Decision.RESUME
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, actor, "ledger")
        await query(ref, 1, T)
        await engine.append("ledger", [NewEvent("added", {"n": 100})], 1)
        with pytest.raises(ActorCrashed):
            await query(ref, 2, T)
        assert await query(ref, 3, T) == [1, 100, 3]


async def test_a_failed_snapshot_is_reported_and_the_actor_goes_on() -> None:
    engine = FlakyEngine()
    engine.fail_snapshots = 1
    actor = Ledger(snapshot_every=2)
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, actor, "ledger")
        assert await query(ref, [1, 2, 3], T) == [1, 2, 3]
        assert [(type(e), seq) for e, seq in actor.snapshot_failures] == [(StorageUnavailable, 2)]
        assert await query(ref, 4, T) == [1, 2, 3, 4]
    snapshot = await engine.load_snapshot("ledger")
    assert snapshot is not None and snapshot.sequence_nr == 4


async def test_an_undecodable_snapshot_fails_recovery_loudly() -> None:
    engine = InMemoryEngine()
    await engine.append("ledger", [NewEvent("added", {"n": n}) for n in range(3)], 0)
    await engine.save_snapshot("ledger", 2, {"not": "an envelope"})
    actor = Ledger()
    async with ActorSystem("a", engine=engine) as system:
        spawn_actor(system, actor, "ledger")
        for _ in range(100):
            if actor.crashes:
                break
            await asyncio.sleep(0.01)
    [(msg, error)] = actor.crashes
    assert msg is None
    assert isinstance(error, JournalIntegrityError)
    assert "snapshot of 'ledger' at sequence_nr 2" in str(error)
    assert actor.recovered_with == []


async def test_a_snapshot_beyond_the_journal_is_ignored() -> None:
    engine = InMemoryEngine()
    await engine.append("ledger", [NewEvent("added", {"n": n}) for n in range(3)], 0)
    await engine.save_snapshot("ledger", 9, {"snapshot_version": 1, "state": [7, 7, 7]})
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, Ledger(), "ledger")
        assert await _state(ref) == ([0, 1, 2], 3)


async def test_without_an_engine_spawn_fails_with_a_clear_error() -> None:
    async with ActorSystem("a") as system:
        with pytest.raises(NoEngineConfigured, match=r"engine=InMemoryEngine\(\)"):
            spawn_actor(system, Ledger(), "ledger")


async def test_without_an_engine_a_child_fails_in_started_with_a_clear_error() -> None:
    actor = Ledger()

    def parent_handler(state: Any, msg: Any, ctx: Any) -> Any:
        ctx.reply(spawn_actor(ctx.self, actor, "ledger"))
        return state

    async with ActorSystem("a") as system:
        parent = spawn(system, parent_handler, "parent")
        await query(parent, "spawn", T)
        for _ in range(100):
            if actor.crashes:
                break
            await asyncio.sleep(0.01)
    [(_, error)] = actor.crashes
    assert isinstance(error, NoEngineConfigured)
    assert "'a/parent/ledger'" in str(error)


def test_a_missing_persistence_id_is_rejected_at_spawn() -> None:
    class Anonymous(Ledger):
        def __init__(self) -> None:
            super().__init__()
            del self.persistence_id

    with pytest.raises(ValueError, match="persistence_id must be a non-empty string"):
        spawn_actor(object(), Anonymous())


class SlowReplayEngine(InMemoryEngine):
    """Yields control between replayed events, so recovery takes many loop turns."""

    async def _slow(self, events: AsyncIterator[StoredEvent]) -> AsyncIterator[StoredEvent]:
        async for event in events:
            await asyncio.sleep(0)
            yield event

    def replay(
        self,
        persistence_id: str,
        from_sequence_nr: int = 1,
        to_sequence_nr: int = MAX_SEQUENCE_NR,
        max_count: int | None = None,
    ) -> AsyncIterator[StoredEvent]:
        return self._slow(
            super().replay(persistence_id, from_sequence_nr, to_sequence_nr, max_count)
        )


async def test_a_long_journal_replays_through_pages_while_commands_wait() -> None:
    engine = SlowReplayEngine()
    await engine.append("ledger", [NewEvent("added", {"n": n}) for n in range(1200)], 0)
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, Ledger(), "ledger")
        replies = [asyncio.ensure_future(query(ref, n, T)) for n in (5000, 5001)]
        assert (await replies[1])[-2:] == [5000, 5001]
        state, seq = await _state(ref)
    assert state == [*range(1200), 5000, 5001]
    assert seq == 1202


async def test_an_event_that_is_not_json_is_rejected_before_anything_is_written() -> None:
    engine = InMemoryEngine()
    actor = Ledger()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, actor, "ledger")
        await query(ref, 1, T)
        with pytest.raises(ActorCrashed) as info:
            await query(ref, float("nan"), T)  # NaN is no JSON value
        assert isinstance(info.value.error, SerializationError)
        assert "payload of event #1 (added)" in str(info.value.error)
        assert await _state(ref) == ([1], 1)
    assert await engine.highest_sequence_nr("ledger") == 1


async def test_two_live_writers_on_one_persistence_id_never_overwrite_each_other() -> None:
    engine = InMemoryEngine()
    async with ActorSystem("a", engine=engine) as system:
        first = spawn_actor(system, Ledger(), "first")
        second = spawn_actor(system, Ledger(), "second")
        assert await _state(first) == await _state(second) == ([], 0)  # both recovered
        assert await query(first, 1, T) == [1]
        with pytest.raises(ActorCrashed) as info:
            await query(second, 2, T)
        assert isinstance(info.value.error, ConcurrencyConflict)
        assert await query(second, 2, T) == [1, 2]  # recovered, then persisted after 1
        with pytest.raises(ActorCrashed):
            await query(first, 3, T)
        assert await query(first, 3, T) == [1, 2, 3]
    assert [e.payload["n"] async for e in engine.replay("ledger")] == [1, 2, 3]
