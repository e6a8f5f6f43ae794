"""Restart of a large user from its snapshot, version 2 (JSON) against version 3 (binary).

Seeds one user with ``--contacts`` contacts (one import in 5,000-row chunks, as ``contacts
import`` sends them), then, ``--runs`` times and alternating the two formats in the same
minutes, stores the whole state as a snapshot at the journal's head in one format and
measures a restart: a new actor system on the same engine, from opening it to the user's
first reply (``count``; ``--first list`` asks for the first page in name order instead,
which also builds the name order). Version 2 is the format (and decoder) the code had before
version 3, so "v2" is the old restart and "v3" the new one. Prints medians.

It also measures what a snapshot costs the other users while it is encoded in the
background: the longest the event loop was held at once (a ticker task measures the gaps
between its turns) during the encoding, and during encoding plus saving, with each encoder.

Runs against ``DATABASE_URL`` or ``TEST_DATABASE_URL`` in a fresh schema dropped at the end.

    python -m bench.restart_bench [--contacts 100000] [--runs 7] [--first count|list]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from actors.snapshots import wrap_snapshot
from bench.user_bench import USER, rows
from contacts_cli.backends.local import LocalBackend
from contacts_cli.process import tune_gc
from contacts_cli.service.envelope import decode_journaled
from contacts_cli.service.ids import persistence_id
from contacts_cli.service.settings import Settings
from contacts_cli.service.snapshot_codec import encode_state_binary, encode_state_text
from contacts_cli.service.user_state import UserState
from persistence.engine import Engine, Json

RESULTS = Path(__file__).with_name("results")
PID = persistence_id(USER)
Encoder = Callable[[UserState], Awaitable[Any]]


async def encode_v2(state: UserState) -> Any:
    return await encode_state_text(list(state.contacts), list(state.keys.items()))


async def encode_v3(state: UserState) -> Any:
    return await encode_state_binary(list(state.contacts), list(state.keys.items()))


FORMATS: dict[str, tuple[int, Encoder]] = {"v2": (2, encode_v2), "v3": (3, encode_v3)}


async def seed(settings: Settings, engine: Engine, count: int) -> tuple[UserState, int]:
    """Import ``count`` contacts through the service; the state and the journal's head."""
    backend = await LocalBackend.open(settings, engine=engine)
    try:
        async for _ in backend.import_rows(USER, rows(count), chunk_size=5000,
                                           idempotency_key="bench-seed"):
            pass
    finally:
        await backend.close()
    state = UserState()
    highest = 0
    async for stored in engine.replay(PID):
        state.apply(decode_journaled(stored.type, stored.version, stored.payload))
        highest = stored.sequence_nr
    await engine.delete_snapshots(PID)
    return state, highest


async def stored_form(state: UserState, fmt: str) -> tuple[Json, bytes | None]:
    version, encode = FORMATS[fmt]
    return wrap_snapshot(await encode(state), version, f"{fmt} snapshot")


async def restart(settings: Settings, engine: Engine, first: str) -> tuple[float, float]:
    """Seconds from opening a new actor system to the user's first reply, and of those the
    recovery (snapshot load and decode)."""
    started = time.perf_counter()
    backend = await LocalBackend.open(settings, engine=engine)
    try:
        if first == "list":
            await backend.list(USER, limit=50)
        else:
            await backend.user_count(USER)
        elapsed = time.perf_counter() - started
        metrics = backend.runtime_metrics()
        replayed = int(metrics.get("events_replayed", 0))
        if replayed:
            raise SystemExit(f"the restart replayed {replayed} events: not from the snapshot")
        recovery = float(metrics.get("replay_seconds_sum", 0.0))
    finally:
        await backend.close()
    return elapsed, recovery


async def longest_hold(work: Awaitable[Any]) -> tuple[float, float]:
    """The longest gap between two turns of a ticker task while ``work`` runs: how long the
    event loop was held at once, i.e. the most another user's request waited for it; as
    wall-clock time and as this thread's CPU time (which leaves out the time the process
    waited for a core, large on a loaded machine)."""
    loop = asyncio.get_running_loop()
    longest_wall = longest_cpu = 0.0
    done = False

    async def ticker() -> None:
        nonlocal longest_wall, longest_cpu
        last_wall, last_cpu = time.perf_counter(), time.thread_time()
        while not done:
            await asyncio.sleep(0)
            wall, cpu = time.perf_counter(), time.thread_time()
            longest_wall = max(longest_wall, wall - last_wall)
            longest_cpu = max(longest_cpu, cpu - last_cpu)
            last_wall, last_cpu = wall, cpu

    task = loop.create_task(ticker())
    await asyncio.sleep(0)
    try:
        await work
    finally:
        done = True
        await task
    return longest_wall, longest_cpu


def summary(samples: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(samples) * 1000, 1),
            "min_ms": round(min(samples) * 1000, 1), "max_ms": round(max(samples) * 1000, 1)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    url = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not url:
        raise SystemExit("set DATABASE_URL or TEST_DATABASE_URL")
    schema = f"bench_restart_{uuid.uuid4().hex[:10]}"
    # Long registrations: on a loaded machine the old decoder can hold the event loop past a
    # renewal, and a lost registration mid-restart would abort the measurement.
    settings = Settings.from_env(database_url=url, db_schema=schema,
                                 data_dir=Path(tempfile.mkdtemp(prefix="restart-bench-")),
                                 query_timeout=120.0, cluster_ttl=60.0, cluster_local_ttl=60.0)
    from persistence.factory import open_engine

    engine = await open_engine(url, schema=schema)
    results: dict[str, Any] = {"contacts": args.contacts, "runs": args.runs,
                               "first": args.first}
    try:
        started = time.perf_counter()
        state, head = await seed(settings, engine, args.contacts)
        print(f"seeded {args.contacts:,} contacts in {time.perf_counter() - started:.1f} s",
              flush=True)
        forms = {fmt: await stored_form(state, fmt) for fmt in FORMATS}
        for fmt, (payload, blob) in forms.items():
            size = len(json.dumps(payload, ensure_ascii=False).encode()) + len(blob or b"")
            results[f"{fmt}_bytes"] = size
            print(f"{fmt}: {size:,} bytes stored", flush=True)
        samples: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
        recoveries: dict[str, list[float]] = {fmt: [] for fmt in FORMATS}
        for _ in range(args.runs):
            for fmt, (payload, blob) in forms.items():
                await engine.save_snapshot(PID, head, payload, blob)
                elapsed, recovery = await restart(settings, engine, args.first)
                samples[fmt].append(elapsed)
                recoveries[fmt].append(recovery)
        for fmt in FORMATS:
            results[f"restart_{fmt}"] = summary(samples[fmt])
            results[f"recovery_{fmt}"] = summary(recoveries[fmt])
            print(f"restart of a user with {args.contacts:,} contacts from a {fmt} snapshot "
                  f"until the first {args.first}: median {results[f'restart_{fmt}']['median_ms']}"
                  f" ms (min {results[f'restart_{fmt}']['min_ms']}, max "
                  f"{results[f'restart_{fmt}']['max_ms']}; recovery median "
                  f"{results[f'recovery_{fmt}']['median_ms']} ms), {args.runs} runs", flush=True)
        for fmt, (version, encode) in FORMATS.items():
            holds: dict[str, list[tuple[float, float]]] = {"encode": [], "encode_and_save": []}
            for _ in range(3):
                holds["encode"].append(await longest_hold(encode(state)))

                async def encode_and_save(version: int = version, encode: Encoder = encode) -> None:
                    payload, blob = wrap_snapshot(await encode(state), version, "snapshot")
                    await engine.save_snapshot(PID, head, payload, blob)

                holds["encode_and_save"].append(await longest_hold(encode_and_save()))
            results[f"longest_hold_{fmt}"] = {
                f"{step}_{clock}": summary([sample[i] for sample in samples])
                for step, samples in holds.items() for i, clock in enumerate(("wall", "cpu"))
            }
            figures = results[f"longest_hold_{fmt}"]
            print(f"{fmt} snapshot in the background: the event loop held at most "
                  f"{figures['encode_cpu']['median_ms']} ms of CPU at once while encoding "
                  f"({figures['encode_wall']['median_ms']} ms wall), "
                  f"{figures['encode_and_save_cpu']['median_ms']} ms while encoding and saving "
                  f"({figures['encode_and_save_wall']['median_ms']} ms wall); medians of 3",
                  flush=True)
    finally:
        await engine.close()
        import psycopg
        from psycopg import sql

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--first", choices=("count", "list"), default="count")
    args = parser.parse_args(argv)
    tune_gc()
    results = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "restart_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
