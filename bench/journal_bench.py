"""Journal benchmarks for the PostgreSQL engine: group-committed appends, replay, recovery.

    python -m bench.journal_bench      # on TEST_DATABASE_URL, DATABASE_URL, else embedded
    python -m bench.journal_bench --url postgresql://postgres@127.0.0.1:5432/test
    python -m bench.journal_bench --scenarios concurrent,batch --events 20000 --runs 3

Each scenario runs ``--runs`` times on a fresh schema (dropped afterwards) and reports the
median. Scenarios:

* ``concurrent``: ``--ids`` persistence ids, each appending single events and awaiting each;
* ``batch``: one persistence id appending batches of ``--batch-size`` events;
* ``replay``: replay of one id holding ``--replay-events`` events, with the peak growth of
  the process's resident memory while replaying;
* ``recovery``: load_snapshot + replay of the 100 events after it.

With ``--fenced`` the ``concurrent`` and ``batch`` appends carry a lease (one registered
instance holding every id, ``persistence.placement``), so every batch runs the fenced
statement: its cost against the same run without the flag.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from persistence import NewEvent
from persistence.embedded import EmbeddedPostgres, start_embedded
from persistence.placement import Lease, PlacementStore
from persistence.postgres import PostgresEngine

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """The process's current resident set size (Linux), or 0 where unknown."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except OSError:
        return 0


def contact_event(n: int) -> NewEvent:
    """A typical small event of the contacts service (about 150 bytes of JSON)."""
    return NewEvent(
        "ContactAdded",
        {
            "contact_id": f"00000000-0000-4000-8000-{n:012d}",
            "name": f"Contact number {n}",
            "email": f"contact{n}@example.com",
            "phone": "+44 20 7946 0958",
        },
    )


@dataclass
class Result:
    name: str
    unit: str
    values: list[float]
    target: str
    extra: str = ""

    def line(self) -> str:
        median = statistics.median(self.values)
        runs = ", ".join(f"{v:,.1f}" for v in self.values)
        extra = f"  {self.extra}" if self.extra else ""
        return (
            f"{self.name:<50} median {median:>11,.1f} {self.unit:<9} "
            f"(runs: {runs}; target {self.target}){extra}"
        )


class Bench:
    def __init__(self, url: str, args: argparse.Namespace) -> None:
        self.url = url
        self.args = args

    async def engine(self) -> PostgresEngine:
        engine = PostgresEngine(
            self.url,
            schema=f"bench_{uuid.uuid4().hex[:12]}",
            pool_max_size=self.args.pool_size,
            replay_page_size=self.args.page_size,
            max_batches_in_flight=self.args.in_flight,
        )
        await engine.start()
        return engine

    async def fences(self, engine: PostgresEngine, pids: list[str]) -> dict[str, Lease | None]:
        """Each id's lease with ``--fenced`` (held by one instance for the run), else None."""
        if not self.args.fenced:
            return dict.fromkeys(pids)
        async with PlacementStore(engine.config, application_name="bench-fences") as store:
            me = await store.register(None, ttl=3600)
            leases: dict[str, Lease | None] = {}
            for pid in pids:
                lease = await store.acquire(pid, me.instance_id)
                assert isinstance(lease, Lease)
                leases[pid] = lease
            return leases

    @property
    def fenced(self) -> str:
        return ", fenced" if self.args.fenced else ""

    async def fresh(self, body: Callable[[PostgresEngine], Awaitable[float]]) -> float:
        engine = await self.engine()
        try:
            return await body(engine)
        finally:
            await engine.drop_schema()

    async def concurrent(self) -> Result:
        ids, per_id = self.args.ids, max(1, self.args.events // self.args.ids)

        async def body(engine: PostgresEngine) -> float:
            fences = await self.fences(engine, [f"user-{i}" for i in range(ids)])

            async def actor(pid: str) -> None:
                fence = fences[pid]
                for seq in range(per_id):
                    await engine.append(pid, [contact_event(seq)], seq, fence=fence)

            await engine.append("warm-up", [contact_event(0)], 0)
            start = time.perf_counter()
            await asyncio.gather(*(actor(f"user-{i}") for i in range(ids)))
            elapsed = time.perf_counter() - start
            self.batches = engine.writer.batches_written
            return ids * per_id / elapsed

        values = [await self.fresh(body) for _ in range(self.args.runs)]
        return Result(
            f"{ids} ids x {per_id} single-event appends{self.fenced}",
            "events/s",
            values,
            ">= 60,000",
            f"({ids * per_id / max(self.batches, 1):.0f} events per transaction in the last run)",
        )

    async def batch(self) -> Result:
        size = self.args.batch_size
        batches = max(1, self.args.events // size)
        events = [contact_event(n) for n in range(size)]

        async def body(engine: PostgresEngine) -> float:
            fence = (await self.fences(engine, ["one-id"]))["one-id"]
            await engine.append("warm-up", events[:10], 0)
            start = time.perf_counter()
            for b in range(batches):
                await engine.append("one-id", events, b * size, fence=fence)
            return batches * size / (time.perf_counter() - start)

        values = [await self.fresh(body) for _ in range(self.args.runs)]
        return Result(
            f"1 id x {batches} batches of {size}{self.fenced}", "events/s", values, ">= 150,000"
        )

    async def fill(self, engine: PostgresEngine, pid: str, count: int) -> None:
        chunk = 5_000
        events = [contact_event(n) for n in range(chunk)]
        written = 0
        while written < count:
            take = min(chunk, count - written)
            await engine.append(pid, events[:take], written)
            written += take

    async def fill_server_side(self, engine: PostgresEngine, pid: str, count: int) -> None:
        """``count`` contact events for ``pid``, as the engine would store them, in one INSERT."""
        n = engine.names
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {journal} (persistence_id, sequence_nr, ordering, created_at, "
                    "type, version, payload, tags, writer) "
                    "SELECT %(pid)s, i, i, now(), 'ContactAdded', 1, jsonb_build_object("
                    "'contact_id', format('00000000-0000-4000-8000-%%s', lpad(i::text, 12, '0')), "
                    "'name', 'Contact number ' || i, 'email', 'contact' || i || '@example.com', "
                    "'phone', '+44 20 7946 0958'), '{{}}', 'bench' "
                    "FROM generate_series(1, %(count)s) AS i"
                ).format(journal=n.journal),
                {"pid": pid, "count": count},
            )
            await conn.execute(
                sql.SQL("INSERT INTO {} (persistence_id, highest) VALUES (%s, %s)").format(
                    n.highest
                ),
                [pid, count],
            )
            await conn.execute(sql.SQL("VACUUM ANALYZE {}").format(n.journal))

    async def replay(self) -> list[Result]:
        count = self.args.replay_events
        engine = await self.engine()
        try:
            # Filled server-side, so that this process's heap holds nothing of the writes
            # and the RSS growth below is the replay's alone.
            await self.fill_server_side(engine, "big", count)
            rates: list[float] = []
            growths: list[float] = []
            for _ in range(self.args.runs):
                baseline = rss_bytes()
                peak = baseline
                seen = 0
                start = time.perf_counter()
                async for event in engine.replay("big"):
                    seen += 1
                    if seen % 10_000 == 0:
                        peak = max(peak, rss_bytes())
                        assert event.sequence_nr == seen
                elapsed = time.perf_counter() - start
                if seen != count:
                    raise RuntimeError(f"replayed {seen} events, expected {count}")
                rates.append(count / elapsed)
                growths.append((peak - baseline) / 2**20)
        finally:
            await engine.drop_schema()
        return [
            Result(
                f"replay of 1 id with {count:,} events",
                "events/s",
                rates,
                ">= 200,000",
                f"(page size {self.args.page_size}; filled server-side)",
            ),
            Result("  peak RSS growth during that replay", "MB", growths, "< 100"),
        ]

    async def recovery(self) -> Result:
        engine = await self.engine()
        try:
            await self.fill(engine, "recovering", 1_100)
            state = {"contacts": {str(n): contact_event(n).payload for n in range(1_000)}}
            await engine.save_snapshot("recovering", 1_000, state)
            timings: list[float] = []
            for _ in range(max(20, self.args.runs)):
                start = time.perf_counter()
                snapshot = await engine.load_snapshot("recovering")
                assert snapshot is not None
                events = [e async for e in engine.replay("recovering", snapshot.sequence_nr + 1)]
                timings.append((time.perf_counter() - start) * 1000)
                assert len(events) == 100
        finally:
            await engine.drop_schema()
        return Result(
            "recovery: snapshot (1,000 contacts) + 100 events", "ms", timings[-self.args.runs:],
            "< 20",
        )


def server_settings(url: str) -> str:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('synchronous_commit', 'fsync', 'server_version', 'shared_buffers', "
            "'wal_sync_method') ORDER BY name"
        ).fetchall()
    return ", ".join(f"{name}={setting}" for name, setting in rows)


async def run(url: str, args: argparse.Namespace) -> None:
    bench = Bench(url, args)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for scenario in scenarios:
        if scenario == "concurrent":
            results = [await bench.concurrent()]
        elif scenario == "batch":
            results = [await bench.batch()]
        elif scenario == "replay":
            results = await bench.replay()
        elif scenario == "recovery":
            results = [await bench.recovery()]
        else:
            raise SystemExit(f"unknown scenario {scenario!r}; use concurrent,batch,replay,recovery")
        for result in results:
            print(result.line(), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.journal_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="PostgreSQL URL (default: TEST_DATABASE_URL, "
                        "DATABASE_URL, else an embedded server in a temporary directory)")
    parser.add_argument("--embedded", action="store_true", help="use an embedded server")
    parser.add_argument("--scenarios", default="concurrent,batch,replay,recovery")
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (median)")
    parser.add_argument("--events", type=int, default=100_000,
                        help="events per run of the concurrent and batch scenarios")
    parser.add_argument("--ids", type=int, default=100, help="ids of the concurrent scenario")
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--replay-events", type=int, default=1_000_000)
    parser.add_argument("--pool-size", type=int, default=8)
    parser.add_argument("--page-size", type=int, default=2_000, help="replay page size")
    parser.add_argument("--in-flight", type=int, default=2, help="group-commit batches in flight")
    parser.add_argument("--fenced", action="store_true",
                        help="appends carry a lease (cluster placement's fence)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.events < 1 or args.ids < 1 or args.batch_size < 1:
        parser.error("--runs, --events, --ids and --batch-size must be positive")

    embedded: EmbeddedPostgres | None = None
    scratch: str | None = None
    url = None if args.embedded else (
        args.url or os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    )
    if url is None:
        scratch = tempfile.mkdtemp(prefix="journal-bench-")
        embedded = start_embedded(scratch, "bench")
        url = embedded.url
    try:
        print(f"server: {PostgresEngine(url).target} ({server_settings(url)})", flush=True)
        asyncio.run(run(url, args))
    finally:
        if embedded is not None:
            embedded.stop()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
