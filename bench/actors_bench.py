"""Throughput of the actor runtime: messages/s through dispatch, queries/s through query.

Run with ``python -m bench.actors_bench [--messages N] [--queries N] [--runs 5]``; it prints
the median of the runs (and each run) for both figures. One event loop, one core.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

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


def _median(label: str, unit: str, runs: int, bench: Callable[[], Awaitable[float]]) -> float:
    rates = [asyncio.run(bench()) for _ in range(runs)]  # type: ignore[arg-type]
    median = statistics.median(rates)
    each = ", ".join(f"{rate:,.0f}" for rate in rates)
    print(f"{label}: median {median:,.0f} {unit} over {runs} runs ({each})")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    _median("dispatch", "messages/s", args.runs, lambda: dispatch_rate(args.messages))
    _median("query", "queries/s", args.runs, lambda: query_rate(args.queries))


if __name__ == "__main__":
    main()
