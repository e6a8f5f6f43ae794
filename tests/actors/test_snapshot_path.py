"""The snapshot path (actors/snapshots.py) through a small persistent actor of its own:
background encoding, one snapshot in flight, deferral, failure and retry, snapshot on stop,
the system's drain, and recovery from what was saved."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest

from actors import (
    ActorRef,
    ActorSystem,
    Amortised,
    Every,
    LastSnapshot,
    PersistentActor,
    PersistentContext,
    When,
    query,
    spawn_actor,
    spawn_persistent,
    stop,
)
from persistence import InMemoryEngine
from persistence.errors import StorageUnavailable
from tests.actors.conftest import settle

T = 5.0  # query timeout: generous, these tests are never timed


@dataclass(frozen=True)
class Add:
    """Persist one event per item (one ``persist_all``); ``more``: another chunk follows."""

    items: tuple[str, ...]
    more: bool = False
    max_deferral: int = 100


GET = "get"
SNAPSHOT = "snapshot"
LAST_RECOVERY = "last recovery"


class Shelf(PersistentActor[list[str]]):
    """A list of strings folded in place; snapshots like the user actor's: amortised
    strategy, a copied view, an async encoder producing JSON text a column at a time."""

    snapshot_version = 3

    def __init__(self, *, every: int = 4, background: bool = True, on_stop: bool = False):
        self.persistence_id = "shelf"
        self.snapshot_strategy = Amortised(every, factor=2, measure=len)
        self.snapshot_in_background = background
        self.snapshot_on_stop = on_stop
        self.gate = asyncio.Event()
        self.gate.set()
        self.encoded: list[int] = []
        """The length of each view handed to the encoder, in order."""
        self.yields = 0
        self.failures: list[tuple[type[BaseException], int]] = []

    def initial_state(self) -> list[str]:
        return []

    def on_event(self, state: list[str], event: Any) -> list[str]:
        state.append(event["item"])
        return state

    async def on_command(
        self, state: list[str], command: Any, ctx: PersistentContext[list[str]]
    ) -> None:
        if isinstance(command, Add):
            if command.more:
                ctx.defer_snapshot(command.max_deferral)
            await ctx.persist_all({"item": item} for item in command.items)
            ctx.reply(ctx.sequence_nr)
        elif command == GET:
            ctx.reply((list(state), ctx.sequence_nr, ctx.last_snapshot))
        elif command == SNAPSHOT:
            ctx.reply(await ctx.snapshot())
        elif command == LAST_RECOVERY:
            report = ctx.last_recovery
            assert report is not None
            ctx.reply((report.snapshot_sequence_nr, report.events_replayed))

    def snapshot_view(self, state: list[str]) -> tuple[str, ...]:
        return tuple(state)

    async def encode_snapshot(self, view: tuple[str, ...]) -> str:
        self.encoded.append(len(view))
        await self.gate.wait()
        parts = []
        for start in range(0, len(view), 2):
            parts.append(",".join(json.dumps(item) for item in view[start:start + 2]))
            await asyncio.sleep(0)
            self.yields += 1
        return "[" + ",".join(parts) + "]"

    def decode_snapshot(self, payload: Any, version: int) -> list[str]:
        assert version == 3 and isinstance(payload, str)
        return list(json.loads(payload))

    def on_snapshot_failure(self, error: BaseException, sequence_nr: int) -> None:
        self.failures.append((type(error), sequence_nr))


def items(first: int, count: int) -> tuple[str, ...]:
    return tuple(f"i{n}" for n in range(first, first + count))


async def saved(engine: InMemoryEngine) -> tuple[int, Any] | None:
    snapshot = await engine.load_snapshot("shelf")
    return None if snapshot is None else (snapshot.sequence_nr, snapshot.payload)


async def test_background_encoding_never_holds_up_commands_and_sees_the_captured_view() -> None:
    engine = InMemoryEngine()
    shelf = Shelf()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, shelf, "shelf")
        shelf.gate.clear()
        assert await query(ref, Add(items(0, 4)), T) == 4  # due at 4: captured, encoding
        assert await query(ref, Add(items(4, 1)), T) == 5  # answered while it is in flight
        assert shelf.encoded == [4]
        assert (await query(ref, GET, T))[2] == LastSnapshot(4, 4)
        assert await system.wait_for_snapshots(timeout=0.01) is False
        assert await saved(engine) is None
        shelf.gate.set()
        assert await system.wait_for_snapshots() is True
        assert shelf.yields == 2  # one await per pair of items
    assert await saved(engine) == (
        4, {"snapshot_version": 3, "state": '["i0","i1","i2","i3"]'}
    )  # the view as of 4: the item persisted while it was encoded is not in it

    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, Shelf(), "shelf")
        assert await query(ref, GET, T) == (list(items(0, 5)), 5, LastSnapshot(4, 4))
        assert await query(ref, LAST_RECOVERY, T) == (4, 1)  # from the snapshot, 1 replayed


async def test_at_most_one_snapshot_is_in_flight_and_an_owed_one_follows_it() -> None:
    engine = InMemoryEngine()
    shelf = Shelf()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, shelf, "shelf")
        shelf.gate.clear()
        await query(ref, Add(items(0, 4)), T)
        assert await query(ref, Add(items(4, 8)), T) == 12  # due again (8 >= 2 * 4): owed
        assert shelf.encoded == [4]
        shelf.gate.set()
        await system.wait_for_snapshots()
        assert shelf.encoded == [4]  # nothing starts a snapshot but the actor's own commands
        await query(ref, GET, T)  # the end of the next command takes the owed one
        await system.wait_for_snapshots()
        assert shelf.encoded == [4, 12]
    snapshot = await saved(engine)
    assert snapshot is not None and snapshot[0] == 12


async def test_a_deferred_snapshot_waits_for_the_last_chunk_but_not_past_the_bound() -> None:
    engine = InMemoryEngine()
    shelf = Shelf()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, shelf, "shelf")
        assert await query(ref, Add(items(0, 3), more=True), T) == 3
        assert await query(ref, Add(items(3, 3), more=True), T) == 6  # due at 4, deferred
        assert shelf.encoded == []
        assert await query(ref, Add(items(6, 1)), T) == 7  # the last chunk: taken at its end
        await system.wait_for_snapshots()
        assert shelf.encoded == [7]
        # next due at 7 + 2 * 7 = 21; deferral bounded at 20 events past 7, i.e. at 27
        for first in range(7, 25, 3):
            await query(ref, Add(items(first, 3), more=True, max_deferral=20), T)
            await system.wait_for_snapshots()
            assert shelf.encoded == [7]  # seq 10 .. 25: 25 - 7 < 20, still held back
        assert await query(ref, Add(items(25, 3), more=True, max_deferral=20), T) == 28
        await system.wait_for_snapshots()
        assert shelf.encoded == [7, 28]
    snapshot = await saved(engine)
    assert snapshot is not None and snapshot[0] == 28


class FlakySnapshots(InMemoryEngine):
    def __init__(self) -> None:
        super().__init__()
        self.fail_snapshots = 0

    async def save_snapshot(
        self, persistence_id: str, sequence_nr: int, payload: Any, blob: bytes | None = None
    ) -> None:
        if self.fail_snapshots:
            self.fail_snapshots -= 1
            raise StorageUnavailable("snapshot store down (injected)")
        await super().save_snapshot(persistence_id, sequence_nr, payload, blob)


@pytest.mark.parametrize("background", [True, False])
async def test_a_failed_snapshot_rolls_the_mark_back_and_is_retried(background: bool) -> None:
    engine = FlakySnapshots()
    engine.fail_snapshots = 1
    shelf = Shelf(background=background)
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, shelf, "shelf")
        await query(ref, Add(items(0, 4)), T)
        await system.wait_for_snapshots()
        assert shelf.failures == [(StorageUnavailable, 4)]
        assert (await query(ref, GET, T))[2] == LastSnapshot()  # rolled back
        await query(ref, Add(items(4, 1)), T)  # due again: retried
        await system.wait_for_snapshots()
        assert (await query(ref, GET, T))[2] == LastSnapshot(5, 5)
    snapshot = await saved(engine)
    assert snapshot is not None and snapshot[0] == 5
    assert shelf.failures == [(StorageUnavailable, 4)]


@pytest.mark.parametrize("on_stop", [True, False])
async def test_snapshot_on_stop_lets_a_restart_replay_nothing(on_stop: bool) -> None:
    engine = InMemoryEngine()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, Shelf(on_stop=on_stop), "shelf")
        await query(ref, Add(items(0, 4)), T)  # snapshot at 4; the next one due at 12
        await query(ref, Add(items(4, 5)), T)  # 9: five behind, at least every=4
    snapshot = await saved(engine)
    assert snapshot is not None and snapshot[0] == (9 if on_stop else 4)

    async with ActorSystem("b", engine=engine) as system:
        shelf = Shelf(on_stop=on_stop)
        ref = spawn_actor(system, shelf, "shelf")
        assert (await query(ref, GET, T))[:2] == (list(items(0, 9)), 9)
        await query(ref, Add(items(9, 2)), T)  # 11: not due, fewer than every=4 behind
        await stop(ref)
        assert shelf.encoded == []
    snapshot = await saved(engine)
    assert snapshot is not None and snapshot[0] == (9 if on_stop else 4)


async def test_a_stop_waits_for_the_snapshot_in_flight_before_its_own() -> None:
    engine = InMemoryEngine()
    shelf = Shelf(on_stop=True)
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, shelf, "shelf")
        shelf.gate.clear()
        await query(ref, Add(items(0, 4)), T)
        await query(ref, Add(items(4, 4)), T)
        stopping = asyncio.ensure_future(stop(ref))
        await settle()
        assert not stopping.done() and shelf.encoded == [4]
        shelf.gate.set()
        await stopping
        assert shelf.encoded == [4, 8]
    snapshot = await saved(engine)
    assert snapshot is not None and snapshot[0] == 8


async def test_the_system_drains_background_snapshots_when_it_shuts_down() -> None:
    engine = InMemoryEngine()
    shelf = Shelf()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, shelf, "shelf")
        shelf.gate.clear()
        await query(ref, Add(items(0, 4)), T)
        asyncio.get_running_loop().call_soon(shelf.gate.set)
    assert len(system.snapshots) == 0
    assert await saved(engine) == (
        4, {"snapshot_version": 3, "state": '["i0","i1","i2","i3"]'}
    )


async def test_a_drain_that_times_out_cancels_what_is_left() -> None:
    engine = InMemoryEngine()
    shelf = Shelf()
    async with ActorSystem("a", engine=engine, snapshot_drain_timeout=0.01) as system:
        ref = spawn_actor(system, shelf, "shelf")
        shelf.gate.clear()
        await query(ref, Add(items(0, 4)), T)
        assert len(system.snapshots) == 1
    assert len(system.snapshots) == 0
    assert await saved(engine) is None
    assert shelf.failures == []  # a cancelled snapshot is not a failure of the store


async def test_an_explicit_snapshot_waits_for_the_one_in_flight() -> None:
    engine = InMemoryEngine()
    shelf = Shelf()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, shelf, "shelf")
        shelf.gate.clear()
        await query(ref, Add(items(0, 5)), T)  # due at 5: in flight
        explicit = asyncio.ensure_future(query(ref, SNAPSHOT, T))
        await settle()
        assert not explicit.done() and shelf.encoded == [5]
        shelf.gate.set()
        assert await explicit is True
        assert shelf.encoded == [5, 5]


async def test_the_functional_api_takes_the_same_path() -> None:
    engine = InMemoryEngine()
    encoded: list[int] = []

    async def encode(view: int) -> int:
        encoded.append(view)
        await asyncio.sleep(0)
        return view

    async def handler(state: int, msg: Any, ctx: PersistentContext[Any]) -> int:
        if msg == GET:
            ctx.reply((state, ctx.sequence_nr))
            return state
        if not ctx.recovering:
            await ctx.persist(msg)
            ctx.reply(ctx.sequence_nr)
        return state + int(msg)

    def spawn_sum(system: ActorSystem) -> ActorRef:
        return spawn_persistent(
            system, handler, "sum", initial_state=0,
            snapshot_strategy=Amortised(2, factor=1, measure=abs),  # the sum as the size
            snapshot_in_background=True, snapshot_on_stop=True, encode_snapshot=encode,
        )

    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_sum(system)
        for n in range(1, 8):
            assert await query(ref, n, T) == n
            await system.wait_for_snapshots()
        assert await query(ref, GET, T) == (28, 7)
        assert encoded == [3, 15]  # at 2 (sum 3), then 3 events later at 5 (sum 15)
    assert encoded == [3, 15, 28]  # on stop: 2 behind, at least every=2
    snapshot = await engine.load_snapshot("sum")
    assert snapshot is not None and snapshot.payload == {"snapshot_version": 1, "state": 28}

    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_sum(system)
        assert await query(ref, GET, T) == (28, 7)


def test_strategies_decide_from_the_last_snapshot() -> None:
    every = Every(5)
    assert [n for n in range(1, 16) if every.due(n, LastSnapshot(0), None, None)] == list(
        range(5, 16)
    )  # level-triggered: with no snapshot taken, due at 5 and after
    assert [n for n in range(6, 16) if every.due(n, LastSnapshot(5), None, None)] == list(
        range(10, 16)
    )
    assert every.behind(9, LastSnapshot(5)) is False and every.behind(10, LastSnapshot(5))

    amortised: Amortised[list[int]] = Amortised(10, factor=2, measure=len)
    assert amortised.measure([1, 2, 3]) == 3
    assert not amortised.due(9, LastSnapshot(0, 0), [], None)
    assert amortised.due(10, LastSnapshot(0, 0), [], None)
    assert not amortised.due(139, LastSnapshot(100, 20), [], None)  # max(10, 40) = 40
    assert amortised.due(140, LastSnapshot(100, 20), [], None)

    odd: When[Any] = When(lambda seq, state, event: event == "odd")
    assert odd.due(1, LastSnapshot(), None, "odd") and not odd.due(2, LastSnapshot(), None, 2)
    with pytest.raises(ValueError, match="snapshot_every must be a positive integer"):
        Every(0)


def test_a_strategy_and_snapshot_every_together_are_refused() -> None:
    class Both(Shelf):
        snapshot_every = 3

    with pytest.raises(ValueError, match="not both"):
        from actors.persistent import _ActorBehaviour

        _ActorBehaviour(Both())
