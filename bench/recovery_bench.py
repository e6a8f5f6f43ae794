"""Cold start of many users: every user's first read after a restart, all in flight.

Seeds ``--users`` users with ``--contacts`` contacts each through :class:`LocalBackend` (one
``create`` per contact, so one journaled event per contact and no snapshot below the
snapshot interval), closes it, then measures ``--runs`` cold starts: a new engine and a new
actor system on the same schema (not timed), then every user's first read at once
(``count`` by default, ``--read list`` for the first page), each one spawning and recovering
that user's actor (``--scenario recover``: the recovery path alone, without actors or
leases). Prints the median rate in replayed events per second and the median
wall time of the burst, with the engine's recovery batches when it reports them.

Runs against ``DATABASE_URL`` or ``TEST_DATABASE_URL`` in a fresh schema dropped at the end.

    python -m bench.recovery_bench [--users 1000] [--contacts 50] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from actors.recovery import recover
from contacts_cli.backends import local
from contacts_cli.backends.local import LocalBackend
from contacts_cli.process import tune_gc
from contacts_cli.service.envelope import decode_journaled
from contacts_cli.service.ids import persistence_id
from contacts_cli.service.settings import Settings
from contacts_cli.service.user_state import UserState
from persistence.engine import Json, StoredEvent
from persistence.factory import open_engine

SEEDING_USERS_IN_FLIGHT = 20

CONNECT_TIMEOUT = 120.0
"""Seconds a query may wait for a pooled connection: a thousand leases acquired at once on
a loaded machine wait longer than the default 5 s, and this bench measures throughput."""


def user(n: int) -> str:
    return f"u{n:05d}"


async def seed(settings: Settings, url: str, users: int, contacts: int) -> float:
    engine = await open_engine(url, schema=settings.db_schema, connect_timeout=CONNECT_TIMEOUT)
    started = time.perf_counter()
    try:
        backend = await LocalBackend.open(settings, engine=engine)
        try:

            gate = asyncio.Semaphore(SEEDING_USERS_IN_FLIGHT)

            async def fill(n: int) -> None:
                rows = [{"name": f"Person {n}-{i:03d}", "emails": [f"p{n}.{i}@example.org"]}
                        for i in range(contacts)]
                async with gate:
                    await backend.import_chunk(user(n), rows, f"seed-{n}")

            await asyncio.gather(*(fill(n) for n in range(users)))
        finally:
            await backend.close()
    finally:
        await engine.close()
    return time.perf_counter() - started


async def cold_start(
    settings: Settings, url: str, users: int, read: str
) -> tuple[float, float, int]:
    """One restart: seconds from the first read sent to the last reply, this process's CPU
    seconds meanwhile, events replayed."""
    engine = await open_engine(url, schema=settings.db_schema, connect_timeout=CONNECT_TIMEOUT)
    try:
        backend = await LocalBackend.open(settings, engine=engine)
        try:
            first = (backend.user_count if read == "count"
                     else lambda u: backend.list(u, limit=50))
            started, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(first(user(n)) for n in range(users)))
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            replayed = int(backend.runtime_metrics().get("events_replayed", 0))
        finally:
            await backend.close()
    finally:
        await engine.close()
    return elapsed, cpu, replayed


async def recover_only(settings: Settings, url: str, users: int) -> tuple[float, float, int]:
    """The recovery path alone (no actor, no lease): every user's :func:`recover` at once,
    folding the real events into the real state."""
    engine = await open_engine(url, schema=settings.db_schema, connect_timeout=CONNECT_TIMEOUT)

    async def apply(state: UserState, stored: StoredEvent) -> UserState:
        return state.apply(decode_journaled(stored.type, stored.version, stored.payload))

    def restore(payload: Json) -> UserState:
        raise AssertionError("the bench's users have no snapshot")

    try:
        started, cpu = time.perf_counter(), time.process_time()
        reports = await asyncio.gather(*(
            recover(engine, persistence_id(user(n)), initial=UserState, restore=restore,
                    apply=apply)
            for n in range(users)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await engine.close()
    return elapsed, cpu, sum(report.events_replayed for _, report in reports)


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def without_placement() -> None:
    """Make :class:`LocalBackend` treat the PostgreSQL engine as one process's storage: no
    cluster membership and no lease per actor (a diagnostic: what the actors and recovery
    cost without the lease acquisitions)."""
    local._is_postgres = lambda engine: False


async def run(args: argparse.Namespace) -> dict[str, Any]:
    url = args.url or os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not url:
        raise SystemExit("set DATABASE_URL or TEST_DATABASE_URL, or pass --url")
    schema = args.schema or f"bench_recovery_{uuid.uuid4().hex[:10]}"
    settings = Settings.from_env(database_url=url, db_schema=schema,
                                 data_dir=Path(tempfile.mkdtemp(prefix="recovery-bench-")),
                                 query_timeout=120.0)
    try:
        if not args.schema:
            seconds = await seed(settings, url, args.users, args.contacts)
            print(f"seeded {args.users:,} users x {args.contacts} contacts in {seconds:.1f} s",
                  flush=True)
        rates, times, cpus = [], [], []
        for _ in range(args.runs):
            if args.scenario == "service":
                elapsed, cpu, replayed = await cold_start(settings, url, args.users, args.read)
            else:
                elapsed, cpu, replayed = await recover_only(settings, url, args.users)
            cpus.append(cpu)
            rates.append(replayed / elapsed)
            times.append(elapsed)
            print(f"  {replayed:,} events in {elapsed * 1000:.0f} ms: "
                  f"{replayed / elapsed:,.0f} events/s ({cpu * 1000:.0f} ms of this process's CPU)",
                  flush=True)
        median_rate, median_time = statistics.median(rates), statistics.median(times)
        what = (f"first {args.read} all in flight" if args.scenario == "service"
                else "recover() alone, all at once")
        if args.no_placement:
            what += ", without placement"
        print(f"cold start of {args.users:,} users x {args.contacts} contacts, {what}: "
              f"median {median_rate:,.0f} events/s, {median_time * 1000:.0f} ms "
                f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}; this process's CPU "
              f"{statistics.median(cpus) * 1000:.0f} ms; {args.runs} runs; {load()})", flush=True)
        return {"events_per_second": median_rate, "seconds": median_time}
    finally:
        if not args.keep and not args.schema:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(schema)))
        elif args.keep:
            print(f"kept schema {schema}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recovery_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="PostgreSQL URL (default: DATABASE_URL, TEST_DATABASE_URL)")
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--contacts", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scenario", choices=("service", "recover"), default="service",
                        help="service: through LocalBackend (actors, leases); recover: "
                        "actors.recovery.recover alone")
    parser.add_argument("--no-placement", action="store_true",
                        help="service without cluster placement (no lease per user): a "
                        "diagnostic of where the time goes")
    parser.add_argument("--read", choices=("count", "list"), default="count")
    parser.add_argument("--schema", help="reuse a schema seeded earlier (with --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the seeded schema")
    args = parser.parse_args(argv)
    tune_gc()
    if args.no_placement:
        without_placement()
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
