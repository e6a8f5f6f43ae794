"""Throughput of the actor runtime: messages/s through dispatch, queries/s through query.

Run with ``python -m bench.actors_bench [--messages N] [--queries N] [--runs 5] [--baseline]``;
it prints the median of the runs (and each run) for both figures. One event loop, one core.
``--baseline`` also measures the same two patterns on bare asyncio (a deque drained by one
parked task; a future per request answered by that task, no timeout), which shows what the
machine gives at the moment: on a shared machine the figures move with the load.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from actors import ActorSystem, Context, dispatch, query, spawn


def _count(state: int, msg: object, ctx: Context) -> int:
    if msg is None:
        ctx.reply(state)
    return state + 1


def _echo(state: None, msg: object, ctx: Context) -> None:
    ctx.reply(msg)


async def dispatch_rate(messages: int) -> float:
    """Messages/s: ``messages`` dispatches to one actor, then one query that waits for them."""
    async with ActorSystem("bench") as system:
        ref = spawn(system, _count, "counter", initial_state=0)
        await query(ref, None, 10)
        start = time.perf_counter()
        for i in range(messages):
            dispatch(ref, i)
        handled = await query(ref, None, 60)
        elapsed = time.perf_counter() - start
        assert handled == messages + 1, handled
    return messages / elapsed


async def query_rate(queries: int) -> float:
    """Queries/s: ``queries`` sequential round trips to one actor."""
    async with ActorSystem("bench") as system:
        ref = spawn(system, _echo, "echo")
        await query(ref, 0, 10)
        start = time.perf_counter()
        for i in range(queries):
            await query(ref, i, 10)
        elapsed = time.perf_counter() - start
    return queries / elapsed


async def bare_dispatch_rate(messages: int) -> float:
    """Bare asyncio: a deque drained by one parked task, woken through a future."""
    loop = asyncio.get_running_loop()
    mailbox: deque[object] = deque()
    handled = [0]
    waiter: list[asyncio.Future[None] | None] = [None]
    done = loop.create_future()

    async def drain() -> None:
        while True:
            while mailbox:
                mailbox.popleft()
                handled[0] += 1
            if handled[0] == messages:
                done.set_result(None)
                return
            parked = waiter[0] = loop.create_future()
            await parked

    task = loop.create_task(drain())
    start = time.perf_counter()
    for i in range(messages):
        mailbox.append(i)
        parked = waiter[0]
        if parked is not None:
            waiter[0] = None
            parked.set_result(None)
    await done
    elapsed = time.perf_counter() - start
    await task
    return messages / elapsed


async def bare_query_rate(queries: int) -> float:
    """Bare asyncio: a future per request, answered by one parked task; no timeout."""
    loop = asyncio.get_running_loop()
    mailbox: deque[tuple[int, asyncio.Future[int]]] = deque()
    waiter: list[asyncio.Future[None] | None] = [None]

    async def serve() -> None:
        while True:
            while mailbox:
                msg, reply = mailbox.popleft()
                reply.set_result(msg)
            parked = waiter[0] = loop.create_future()
            await parked

    task = loop.create_task(serve())
    await asyncio.sleep(0)
    start = time.perf_counter()
    for i in range(queries):
        reply: asyncio.Future[int] = loop.create_future()
        mailbox.append((i, reply))
        parked = waiter[0]
        if parked is not None:
            waiter[0] = None
            parked.set_result(None)
        await reply
    elapsed = time.perf_counter() - start
    task.cancel()
    return queries / elapsed


def _median(label: str, unit: str, runs: int,
            bench: Callable[[], Coroutine[Any, Any, float]]) -> float:
    rates = [asyncio.run(bench()) for _ in range(runs)]
    median = statistics.median(rates)
    each = ", ".join(f"{rate:,.0f}" for rate in rates)
    print(f"{label}: median {median:,.0f} {unit} over {runs} runs ({each})")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", action="store_true", help="also measure bare asyncio")
    args = parser.parse_args()
    if args.baseline:
        _median("bare asyncio dispatch", "messages/s", args.runs,
                lambda: bare_dispatch_rate(args.messages))
        _median("bare asyncio query", "queries/s", args.runs,
                lambda: bare_query_rate(args.queries))
    _median("dispatch", "messages/s", args.runs, lambda: dispatch_rate(args.messages))
    _median("query", "queries/s", args.runs, lambda: query_rate(args.queries))


if __name__ == "__main__":
    main()
