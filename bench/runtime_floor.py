"""The floor under issue 12's workloads: the same shapes of load without the contacts service.

``bench.service_bench`` measures creates and a cold start through ``LocalBackend``:
validation, the user actor, its commands and events, cluster placement, the journal. This
runs the same shapes with each layer above the runtime taken away, on the same PostgreSQL
engine and in the same process, so the service's figure can be split into what the runtime
and the journal cost and what the contacts layers add:

* ``bare``: no actor and no database: one asyncio task per request, all in flight, each
  awaiting a future that one consumer resolves in batches of ``MAX_BATCH``: the cost of the
  request/response shape on this machine's Python;
* ``actor``: a trivial persistent actor (one small event per command, ``max_batch`` as the
  user actor's, a codec that vouches for its events as the user actor's does, no
  placement) on the PostgreSQL engine: the runtime and the journal;
* ``service``: ``bench.service_bench``'s own workload, for comparison in the same minutes.

Workloads: ``100x100`` (100 users, 100 writes each, all in flight), ``1x5000`` (one user,
5,000 writes in flight), ``cold`` (1,000 users of 50 events each, restarted, every user's
first read at once; events replayed per second). Each figure is the median of ``--runs``.
Runs against ``DATABASE_URL`` or ``TEST_DATABASE_URL`` in a fresh schema dropped at the end.

    python -m bench.runtime_floor [--runs 3] [--only bare,actor,service]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from actors import ActorSystem, JsonEvents, PersistentActor, PersistentContext, query, spawn_actor
from bench.cli_bench import drop_schema
from bench.service_bench import FULL, Bench
from contacts_cli.process import tune_gc
from contacts_cli.service.actor import COMMAND_BATCH
from persistence.engine import Engine
from persistence.factory import open_engine

MAX_BATCH = COMMAND_BATCH
LEVELS = ("bare", "actor", "service")
WRITES = {"100x100": (100, 100), "1x5000": (1, 5000)}
COLD_USERS, COLD_EVENTS = 1_000, 50


class VouchedJson(JsonEvents):
    """JSON events of plain strings and ints, which decode back equal: vouched for
    (``folds_as_written``), as the user actor's codec vouches for its own, so the trivial
    actor takes the service's persist path (no second encoding or decoding per event)."""

    def folds_as_written(self, event: Any) -> bool:
        return True


class Trivial(PersistentActor[int]):
    """One small event per write; a read answers the sequence number."""

    max_batch = MAX_BATCH
    events = VouchedJson()

    def __init__(self, persistence_id: str) -> None:
        self.persistence_id = persistence_id

    def initial_state(self) -> int:
        return 0

    def on_event(self, state: int, event: Any) -> int:
        return state + 1

    async def on_command(self, state: int, command: Any, ctx: PersistentContext[int]) -> None:
        if command == "get":
            ctx.reply(ctx.sequence_nr)
        elif isinstance(command, int):
            await ctx.persist_all({"type": "added", "n": n} for n in range(command))
            ctx.reply(ctx.sequence_nr)
        else:
            await ctx.persist({"type": "added", "name": command})
            ctx.reply(ctx.sequence_nr)


async def bare(users: int, per_user: int) -> float:
    """Requests per second: a task per request awaiting a future, answered in batches."""
    loop = asyncio.get_running_loop()
    queue: list[asyncio.Future[int]] = []
    ready = asyncio.Event()

    async def consumer(total: int) -> None:
        answered = 0
        while answered < total:
            await ready.wait()
            ready.clear()
            while queue:
                batch, queue[:] = queue[:MAX_BATCH], queue[MAX_BATCH:]
                await asyncio.sleep(0)  # the journal write the batch would wait for
                for future in batch:
                    future.set_result(answered)
                    answered += 1

    async def request() -> int:
        future = loop.create_future()
        queue.append(future)
        ready.set()
        return await future

    total = users * per_user
    serving = loop.create_task(consumer(total))
    started = time.perf_counter()
    await asyncio.gather(*(request() for _ in range(total)))
    elapsed = time.perf_counter() - started
    await serving
    return total / elapsed


async def actor_writes(engine: Engine, tag: str, users: int, per_user: int) -> float:
    """Writes per second through trivial persistent actors, all in flight."""
    async with ActorSystem("floor", engine=engine) as system:
        refs = [spawn_actor(system, Trivial(f"floor-{tag}-{u}"), f"u{u}") for u in range(users)]
        await asyncio.gather(*(query(ref, "get", 300) for ref in refs))
        started = time.perf_counter()
        await asyncio.gather(*(query(ref, f"c{i}", 300) for i in range(per_user) for ref in refs))
        elapsed = time.perf_counter() - started
    return users * per_user / elapsed


async def actor_cold(engine: Engine, tag: str) -> float:
    """Events replayed per second: every trivial actor's first read after a restart."""
    ids = [f"floor-cold-{tag}-{u}" for u in range(COLD_USERS)]
    async with ActorSystem("seed", engine=engine) as system:
        gate = asyncio.Semaphore(16)

        async def seed(number: int, pid: str) -> None:
            async with gate:
                await query(spawn_actor(system, Trivial(pid), f"u{number}"), COLD_EVENTS, 300)

        await asyncio.gather(*(seed(n, pid) for n, pid in enumerate(ids)))
    async with ActorSystem("floor", engine=engine) as system:
        started = time.perf_counter()
        refs = [spawn_actor(system, Trivial(pid), f"u{n}") for n, pid in enumerate(ids)]
        counts = await asyncio.gather(*(query(ref, "get", 300) for ref in refs))
        elapsed = time.perf_counter() - started
    assert counts == [COLD_EVENTS] * COLD_USERS, "a trivial actor did not recover its events"
    return COLD_USERS * COLD_EVENTS / elapsed


async def run(url: str, runs: int, levels: set[str]) -> None:
    schema = f"bench_floor_{uuid.uuid4().hex[:10]}"
    engine = await open_engine(url, schema=schema)
    service = Bench(url, FULL, runs)
    service.engine = engine
    try:
        for name, (users, per_user) in WRITES.items():
            measures: dict[str, Callable[[int], Awaitable[float]]] = {
                "bare": lambda run, u=users, p=per_user: bare(u, p),
                "actor": lambda run, u=users, p=per_user, n=name: actor_writes(
                    engine, f"{n}-{run}", u, p),
                "service": lambda run, u=users, p=per_user, n=name: service.creates(
                    f"{n}-{run}", u, p),
            }
            for level in LEVELS:
                if level in levels:
                    await measures[level](-1)  # warm-up
                    rates = [await measures[level](run) for run in range(runs)]
                    report(f"{name} writes, {level}", rates, "writes/s")
        if "actor" in levels:
            rates = [await actor_cold(engine, str(run)) for run in range(runs)]
            report("cold start, actor", rates, "events/s")
        if "service" in levels:
            await service.seed_cold()
            rates = [(await service.cold_start())[0] for _ in range(runs)]
            report("cold start, service", rates, "events/s")
    finally:
        await engine.close()
        drop_schema(url, schema)
        drop_schema(url, service.schema)


def report(label: str, rates: list[float], unit: str) -> None:
    print(f"{label:<28}: median {statistics.median(rates):>10,.0f} {unit} (min "
          f"{min(rates):,.0f}, max {max(rates):,.0f}; {len(rates)} runs)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default=",".join(LEVELS),
                        help=f"comma-separated, among {', '.join(LEVELS)}")
    args = parser.parse_args(argv)
    levels = {name.strip() for name in args.only.split(",") if name.strip()}
    if unknown := levels - set(LEVELS):
        parser.error(f"unknown level(s) {', '.join(sorted(unknown))}")
    url = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not url:
        raise SystemExit("set DATABASE_URL or TEST_DATABASE_URL")
    tune_gc()
    asyncio.run(run(url, max(1, args.runs), levels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
