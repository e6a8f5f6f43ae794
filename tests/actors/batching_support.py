"""What the command batching tests share: an engine with counted (and failing, or held)
appends, and a small persistent actor whose commands cover writes, reads and faults."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from actors import ActorCrashed, ActorRef, PersistentActor, PersistentContext, query
from persistence import InMemoryEngine, NewEvent, StoredEvent
from persistence.leases import Lease
from persistence.placement.memory import InMemoryLeases

T = 5.0


class InjectedWriteFailure(ConnectionError):
    """What the engine raises for an append holding a poisoned event (nothing written)."""


class Boom(Exception):
    """What a handler raises on purpose."""


class CountingEngine(InMemoryEngine):
    """Counts appends; refuses an append holding a ``poison`` event (writing nothing, or,
    with ``lands``, writing it first: a write whose outcome the caller cannot know); with
    ``gate`` set, each append waits for it."""

    def __init__(self, *, lands: bool = False, leases: InMemoryLeases | None = None) -> None:
        super().__init__(leases=leases)
        self.appends = 0
        self.lands = lands
        self.gate: asyncio.Event | None = None
        self.fences: list[Lease | None] = []

    async def append(
        self,
        persistence_id: str,
        events: Sequence[NewEvent],
        expected_sequence_nr: int,
        *,
        fence: Lease | None = None,
    ) -> list[StoredEvent]:
        self.appends += 1
        self.fences.append(fence)
        if self.gate is not None:
            await self.gate.wait()
        poisoned = any(isinstance(e.payload, dict) and e.payload.get("poison") for e in events)
        if poisoned and not self.lands:
            raise InjectedWriteFailure("injected: nothing written")
        stored = await super().append(persistence_id, events, expected_sequence_nr, fence=fence)
        if poisoned:
            raise InjectedWriteFailure("injected: written, then the connection was lost")
        return stored


class Ledger(PersistentActor[list[int]]):
    """The state is the list of numbers persisted. Commands:

    * ``("w", n)``: persist ``n``, reply ``("ok", state, sequence_nr)``;
    * ``("ww", a, b)``: persist ``a`` then ``b`` (two persists), reply as ``w``;
    * ``("r",)``: reply ``("read", state, sequence_nr)``;
    * ``("boom",)``: raise before persisting; ``("boom_after", n)``: persist ``n``, raise;
    * ``("poison", n)``: persist ``n`` in an event the engine refuses to write.
    """

    def __init__(self, max_batch: int, pid: str = "ledger", *, pipeline: bool = False) -> None:
        self.persistence_id = pid
        self.max_batch = max_batch
        self.pipeline = pipeline
        self.crashes: list[tuple[object, BaseException]] = []

    def initial_state(self) -> list[int]:
        return []

    def on_event(self, state: list[int], event: Any) -> list[int]:
        return [*state, int(event["n"])]

    async def on_command(
        self, state: list[int], command: Any, ctx: PersistentContext[list[int]]
    ) -> None:
        kind = command[0]
        if kind == "r":
            ctx.reply(("read", list(ctx.state), ctx.sequence_nr))
            return
        if kind == "boom":
            raise Boom("before persisting")
        if kind == "ww":
            await ctx.persist({"n": command[1]})
            await ctx.persist({"n": command[2]})
        elif kind == "poison":
            await ctx.persist({"n": command[1], "poison": True})
        else:
            await ctx.persist({"n": command[1]})
        if kind == "boom_after":
            raise Boom("after persisting")
        ctx.reply(("ok", list(ctx.state), ctx.sequence_nr))

    def on_crash(
        self, msg: object, error: BaseException, ctx: PersistentContext[list[int]]
    ) -> None:
        self.crashes.append((msg, error))
        return None


def outcome(result: object) -> object:
    """A reply, or what a query's failure says (the error the handler or the write raised)."""
    if isinstance(result, ActorCrashed):
        return ("crashed", type(result.error).__name__)
    if isinstance(result, BaseException):
        return ("failed", type(result).__name__)
    return result


async def ask_all(ref: ActorRef, commands: Sequence[object]) -> list[object]:
    """Queue every command before the actor runs again, then wait for every outcome."""
    results = await asyncio.gather(*(query(ref, c, T) for c in commands),
                                   return_exceptions=True)
    return [outcome(r) for r in results]


async def journal_of(engine: InMemoryEngine, pid: str = "ledger") -> list[Any]:
    return [e.payload["n"] async for e in engine.replay(pid)]


class CallerCrashed(Exception):
    """What a simulated script raises part-way (the cancellation tests)."""


class Tally(PersistentActor[int]):
    """Two events per command (``persist_all``); replies with the running total."""

    def __init__(self, name: str) -> None:
        self.persistence_id = f"tally/{name}"

    def initial_state(self) -> int:
        return 0

    def on_event(self, state: int, event: Any) -> int:
        return state + int(event["n"])

    async def on_command(self, state: int, command: Any, ctx: PersistentContext[int]) -> None:
        await ctx.persist_all([{"n": 1}, {"n": int(command)}])
        ctx.reply(ctx.state)


class BatchedTally(Tally):
    max_batch = 8


class PipelinedTally(Tally):
    max_batch = 4
    pipeline = True

