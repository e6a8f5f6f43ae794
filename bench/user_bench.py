"""Restart of a large user: how long until a user with 100,000 contacts answers again.

Seeds one user with ``--contacts`` contacts (one import, 5,000-row chunks, the way
``contacts import`` sends them), writes a snapshot of the whole state at the journal's head
with the code under test (so every run starts from a snapshot and replays nothing), then
measures ``--runs`` restarts: a new actor system on the same engine, from opening it to the
first answers of the user's actor. Prints medians; writes bench/results/user_bench.json.

* ``count``: recovery (snapshot load + decode) until the first reply;
* ``add``: recovery plus one ``create`` (the first write after a start);
* ``list``: recovery plus the first page in name order (builds the name index).

Runs against ``DATABASE_URL`` or ``TEST_DATABASE_URL`` in a fresh schema dropped at the end.

    python -m bench.user_bench [--contacts 100000] [--runs 7]
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
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from actors.snapshots import wrap_snapshot
from contacts_cli.backends.local import LocalBackend
from contacts_cli.process import tune_gc
from contacts_cli.service.envelope import decode_journaled
from contacts_cli.service.ids import persistence_id
from contacts_cli.service.settings import Settings
from contacts_cli.service.snapshot_codec import SNAPSHOT_VERSION, encode_state_binary
from contacts_cli.service.user_state import UserState
from persistence.factory import open_engine

RESULTS = Path(__file__).with_name("results")
USER = "big"


async def rows(count: int) -> AsyncIterator[dict[str, Any]]:
    for i in range(count):
        yield {"name": f"Person {i:06d}", "emails": [f"person{i}@example.org"] if i % 10 else [],
               "phones": [f"+1 415 555 {i % 10000:04d}"] if i % 3 == 0 else [],
               "company": f"Company {i % 500}", "labels": ["friends", "work"] if i % 7 == 0
               else []}


async def seed(settings: Settings, engine: Any, count: int) -> int:
    backend = await LocalBackend.open(settings, engine=engine)
    try:
        async for _ in backend.import_rows(USER, rows(count), chunk_size=5000,
                                           idempotency_key="bench-seed"):
            pass
    finally:
        await backend.close()
    pid = persistence_id(USER)
    state = UserState()
    highest = 0
    async for stored in engine.replay(pid):
        state.apply(decode_journaled(stored.type, stored.version, stored.payload))
        highest = stored.sequence_nr
    encoded = await encode_state_binary(list(state.contacts), list(state.keys.items()))
    payload, blob = wrap_snapshot(encoded, SNAPSHOT_VERSION, "the bench's snapshot")
    await engine.save_snapshot(pid, highest, payload, blob)
    return len(json.dumps(payload)) + len(blob or b"")


async def restart(settings: Settings, engine: Any,
                  first: Callable[[LocalBackend], Awaitable[Any]]) -> tuple[float, int]:
    started = time.perf_counter()
    backend = await LocalBackend.open(settings, engine=engine)
    try:
        await first(backend)
        elapsed = time.perf_counter() - started
        replayed = int(backend.runtime_metrics().get("events_replayed", 0))
    finally:
        await backend.close()
    return elapsed, replayed


async def run(args: argparse.Namespace) -> dict[str, Any]:
    url = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not url:
        raise SystemExit("set DATABASE_URL or TEST_DATABASE_URL")
    schema = f"bench_user_{uuid.uuid4().hex[:10]}"
    settings = Settings.from_env(database_url=url, db_schema=schema,
                                 data_dir=Path(tempfile.mkdtemp(prefix="user-bench-")),
                                 query_timeout=120.0)
    engine = await open_engine(url, schema=schema)
    results: dict[str, Any] = {"contacts": args.contacts, "runs": args.runs}
    try:
        started = time.perf_counter()
        results["snapshot_bytes"] = await seed(settings, engine, args.contacts)
        print(f"seeded {args.contacts:,} contacts in {time.perf_counter() - started:.1f} s; "
              f"snapshot {results['snapshot_bytes']:,} bytes", flush=True)
        scenarios: dict[str, Callable[[LocalBackend], Awaitable[Any]]] = {
            "count": lambda b: b.user_count(USER),
            "add": lambda b: b.create(USER, {"name": "Newcomer", "emails": ["new@example.org"]}),
            "list": lambda b: b.list(USER, limit=50),
        }
        for name, first in scenarios.items():
            samples = []
            for _ in range(args.runs):
                elapsed, replayed = await restart(settings, engine, first)
                samples.append(elapsed)
            median = statistics.median(samples)
            results[f"restart_{name}_ms"] = {"median": round(median * 1000, 1),
                                             "min": round(min(samples) * 1000, 1),
                                             "max": round(max(samples) * 1000, 1),
                                             "events_replayed_last_run": replayed}
            print(f"restart of a user with {args.contacts:,} contacts until the first {name}: "
                  f"median {median * 1000:.0f} ms (min {min(samples) * 1000:.0f}, max "
                  f"{max(samples) * 1000:.0f}; {replayed} events replayed)", flush=True)
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
    args = parser.parse_args(argv)
    tune_gc()
    results = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "user_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
