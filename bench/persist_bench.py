"""Events persisted per second through one persistent actor on the in-memory engine.

Run: ``python -m bench.persist_bench [--events N] [--runs R]``. Prints the median of R runs
for three shapes of load: commands dispatched back to back (each persists one event),
one query per command (a caller waiting for every reply), and ``persist_all`` batches;
then how fast a restarted actor replays those N events (recovery, no snapshot).
This measures the actor layer's own cost (encode, append, fold, metrics), not a database.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from actors import ActorSystem, PersistentActor, PersistentContext, dispatch, query, spawn_actor
from persistence import InMemoryEngine

BATCH = 100


class Counter(PersistentActor[int]):
    """Persists one event per int command, or a batch per list command."""

    def __init__(self, persistence_id: str) -> None:
        self.persistence_id = persistence_id

    def initial_state(self) -> int:
        return 0

    def on_event(self, state: int, event: Any) -> int:
        return state + int(event["n"])

    async def on_command(self, state: int, command: Any, ctx: PersistentContext[int]) -> None:
        if command == "get":
            ctx.reply(ctx.sequence_nr)
        elif isinstance(command, list):
            await ctx.persist_all({"type": "added", "n": n} for n in command)
            ctx.reply(ctx.sequence_nr)
        else:
            await ctx.persist({"type": "added", "n": command})
            ctx.reply(ctx.sequence_nr)


async def _dispatched(ref: Any, events: int) -> None:
    for n in range(events):
        dispatch(ref, n)
    assert await query(ref, "get", 600) == events


async def _queried(ref: Any, events: int) -> None:
    for n in range(events):
        await query(ref, n, 60)


async def _batched(ref: Any, events: int) -> None:
    for start in range(0, events, BATCH):
        await query(ref, list(range(start, min(start + BATCH, events))), 60)


async def _run(load: Callable[[Any, int], Awaitable[None]], events: int) -> float:
    engine = InMemoryEngine()
    async with ActorSystem("bench", engine=engine) as system:
        ref = spawn_actor(system, Counter("bench-1"), "counter")
        await query(ref, "get", 60)  # recovered and ready
        started = time.perf_counter()
        await load(ref, events)
        seconds = time.perf_counter() - started
    assert await engine.highest_sequence_nr("bench-1") == events
    return events / seconds


async def _replay(events: int) -> float:
    engine = InMemoryEngine()
    async with ActorSystem("fill", engine=engine) as system:
        await _batched(spawn_actor(system, Counter("bench-1"), "counter"), events)
    async with ActorSystem("bench", engine=engine) as system:
        started = time.perf_counter()
        ref = spawn_actor(system, Counter("bench-1"), "counter")
        assert await query(ref, "get", 600) == events
        seconds = time.perf_counter() - started
        assert system.metrics.events_replayed == events
    return events / seconds


async def main(events: int, runs: int) -> dict[str, float]:
    loads = {
        "dispatch, 1 event per command": _dispatched,
        "query, 1 event per command": _queried,
        f"query, persist_all of {BATCH}": _batched,
    }
    results = {}
    for label, load in loads.items():
        rates = [await _run(load, events) for _ in range(runs)]
        results[label] = statistics.median(rates)
        print(f"{label:34s} median {results[label]:>10,.0f} events/s  ({runs} runs of {events})")
    label = "recovery (replay, no snapshot)"
    results[label] = statistics.median([await _replay(events) for _ in range(runs)])
    print(f"{label:34s} median {results[label]:>10,.0f} events/s  ({runs} runs of {events})")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.runs))
