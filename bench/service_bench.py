"""The five workloads of issue 12, measured as a user would: through ``LocalBackend``.

Every command goes through validation, the user's persistent actor and the group-committed
PostgreSQL journal (``synchronous_commit=on``), in this process:

* ``creates``: 100 users x 100 creates, all in flight (creates/s; target >= 40,000/s);
* ``hot_user``: 1 user x 5,000 creates, all in flight (creates/s; target >= 20,000/s);
* ``cold_start``: 1,000 users x 50 contacts; the service is closed and opened again, then
  every user's first read is sent at once (events replayed per second; target >= 250,000/s,
  under 0.2 s), timed from the first read (the open is printed apart);
* ``large_restart``: a user with 100,000 contacts, snapshotted by the service itself (its
  import's last chunk and its stop), restarted until its first reply, the open included
  (ms; target <= 100 ms);
* ``import``: a 100,000-row CSV through the path ``contacts import FILE.csv`` takes
  in-process (``ImportJob`` on a ``LocalBackend``), from the open to the close, which waits
  for the snapshot the import leaves (rows/s; target >= 30,000/s).

Then ``memory``: the resident memory of a process (a subprocess, so nothing else of this
one counts) hosting the ``cold_start`` users and one hosting the ``large_restart`` user,
each above the same process with the service open and no user yet (VmRSS).

Each workload's figure is the median of ``--runs`` runs (after one warm-up run for the
two create workloads), with fresh users per run. ``--only`` picks workloads (comma
separated; ``memory`` needs the data of ``cold_start`` and ``large_restart`` and seeds
what they did not); ``--quick`` scales everything down for a smoke test.
Runs against ``DATABASE_URL`` or ``TEST_DATABASE_URL`` in a fresh schema dropped at the
end. Prints one line per workload; writes bench/results/service_bench.json.

    python -m bench.service_bench [--runs 3] [--only creates,import] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cli_bench import drop_schema, write_csv
from contacts_cli.backends.local import LocalBackend
from contacts_cli.process import tune_gc
from contacts_cli.service.settings import Settings
from persistence.factory import open_engine

RESULTS = Path(__file__).with_name("results")
WORKLOADS = ("creates", "hot_user", "cold_start", "large_restart", "import", "memory")
BIG_USER = "big"
SEED_IN_FLIGHT = 16
"""Users seeded (or woken to measure memory) at a time: unmeasured work, kept well within
the connection pool even on a busy machine."""


@dataclass(frozen=True)
class Scale:
    """How big each workload is: the issue's figures, or a smoke test's."""

    users: int = 100
    creates_per_user: int = 100
    hot_creates: int = 5_000
    cold_users: int = 1_000
    cold_contacts: int = 50
    big_contacts: int = 100_000
    import_rows: int = 100_000


FULL = Scale()
QUICK = Scale(users=10, creates_per_user=10, hot_creates=200, cold_users=20, cold_contacts=10,
              big_contacts=2_000, import_rows=2_000)


def contact(i: int) -> dict[str, Any]:
    """A realistic new contact: most with an email, a third with a phone."""
    data: dict[str, Any] = {"name": f"Person {i:06d}", "company": f"Company {i % 500}"}
    if i % 10:
        data["emails"] = [f"person{i}@example.org"]
    if i % 3 == 0:
        data["phones"] = [f"+1 415 555 {i % 10000:04d}"]
    return data


def vm_rss_kib() -> int:
    """This process's resident memory, in KiB, as the kernel counts it now."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


class Bench:
    """One schema, one engine, and the settings every ``LocalBackend`` of the run shares."""

    def __init__(self, url: str, scale: Scale, runs: int) -> None:
        self.url = url
        self.scale = scale
        self.runs = runs
        self.schema = f"bench_service_{uuid.uuid4().hex[:10]}"
        self.work = Path(tempfile.mkdtemp(prefix="service-bench-"))
        self.settings = Settings.from_env(database_url=url, db_schema=self.schema,
                                          data_dir=self.work / "data", query_timeout=300.0,
                                          import_chunk_timeout=300.0)
        self.engine: Any = None
        self.cold_seeded = False
        self.big_seeded = False
        self.results: dict[str, Any] = {"runs": runs, "scale": scale.__dict__}

    async def open(self) -> LocalBackend:
        return await LocalBackend.open(self.settings, engine=self.engine)

    def report(self, key: str, label: str, samples: list[float], unit: str, target: str,
               extra: str = "", **figures: Any) -> None:
        median = statistics.median(samples)
        self.results[key] = {"median": round(median, 1), "min": round(min(samples), 1),
                             "max": round(max(samples), 1), "unit": unit, **figures}
        print(f"{label:<52}: median {median:,.0f} {unit} (min {min(samples):,.0f}, max "
              f"{max(samples):,.0f}; target {target}){extra}", flush=True)

    # -- creates ---------------------------------------------------------------------------

    async def creates(self, tag: str, users: int, per_user: int) -> float:
        """Creates per second with ``users`` x ``per_user`` creates in flight at once, each
        user's actor started first (a read) so the figure is of creates alone."""
        backend = await self.open()
        try:
            names = [f"{tag}-{u}" for u in range(users)]
            await asyncio.gather(*(backend.user_count(name) for name in names))
            started = time.perf_counter()
            await asyncio.gather(*(backend.create(name, contact(i))
                                   for i in range(per_user) for name in names))
            elapsed = time.perf_counter() - started
        finally:
            await backend.close()
        return users * per_user / elapsed

    async def run_creates(self, key: str, label: str, users: int, per_user: int,
                          target: str) -> None:
        await self.creates(f"{key}-warm", users, per_user)
        samples = [await self.creates(f"{key}-{run}", users, per_user)
                   for run in range(self.runs)]
        self.report(key, label, samples, "creates/s", target)

    # -- cold start ------------------------------------------------------------------------

    async def seed_cold(self) -> None:
        """``cold_users`` users of ``cold_contacts`` contacts each, one import chunk each,
        ``SEED_IN_FLIGHT`` users at a time (seeding is not measured)."""
        if self.cold_seeded:
            return
        scale = self.scale
        backend = await self.open()
        try:
            rows = [contact(i) for i in range(scale.cold_contacts)]
            gate = asyncio.Semaphore(SEED_IN_FLIGHT)

            async def seed(user: str) -> None:
                async with gate:
                    await backend.import_chunk(user, rows, f"seed-{user}")

            await asyncio.gather(*(seed(f"cold-{u}") for u in range(scale.cold_users)))
        finally:
            await backend.close()
        self.cold_seeded = True

    async def cold_start(self) -> tuple[float, float, float]:
        """(events/s, seconds, seconds to open): every user's first read after a restart."""
        scale = self.scale
        opening = time.perf_counter()
        backend = await self.open()
        opened = time.perf_counter()
        try:
            await asyncio.gather(*(backend.user_count(f"cold-{u}")
                                   for u in range(scale.cold_users)))
            elapsed = time.perf_counter() - opened
            replayed = backend.runtime_metrics().get("events_replayed", 0)
        finally:
            await backend.close()
        expected = scale.cold_users * scale.cold_contacts
        if replayed < expected:  # a snapshot spared some replay: say so rather than mislead
            print(f"  (note: {replayed:,.0f} of {expected:,} events replayed)", flush=True)
        return expected / elapsed, elapsed, opened - opening

    async def run_cold_start(self) -> None:
        scale = self.scale
        await self.seed_cold()
        samples = [await self.cold_start() for _ in range(self.runs)]
        seconds = statistics.median(s[1] for s in samples)
        opening = statistics.median(s[2] for s in samples)
        self.report("cold_start", f"cold start, {scale.cold_users:,} users x "
                    f"{scale.cold_contacts} contacts, first reads", [s[0] for s in samples],
                    "events/s", ">= 250,000/s, < 0.2 s",
                    f"; median {seconds:.3f} s from the first read, open {opening:.3f} s",
                    seconds=round(seconds, 3), open_seconds=round(opening, 3))

    # -- a large user's restart ------------------------------------------------------------

    async def seed_big(self) -> None:
        """One user of ``big_contacts`` contacts, imported in 5,000-row chunks as ``contacts
        import`` sends them; the service snapshots it as it would (after the import's last
        chunk, and on stop)."""
        if self.big_seeded:
            return
        rows = [contact(i) for i in range(self.scale.big_contacts)]
        backend = await self.open()
        try:
            for start in range(0, len(rows), 5000):
                chunk = rows[start:start + 5000]
                await backend.import_chunk(BIG_USER, chunk, f"seed-big-{start}",
                                           more=start + 5000 < len(rows))
        finally:
            await backend.close()
        self.big_seeded = True

    async def restart(self, first: Callable[[LocalBackend], Awaitable[Any]]
                      ) -> tuple[float, float]:
        started = time.perf_counter()
        backend = await self.open()
        try:
            await first(backend)
            elapsed = time.perf_counter() - started
            replayed = backend.runtime_metrics().get("events_replayed", 0)
        finally:
            await backend.close()
        return elapsed * 1000, replayed

    async def run_large_restart(self) -> None:
        await self.seed_big()
        samples = [await self.restart(lambda b: b.user_count(BIG_USER))
                   for _ in range(self.runs)]
        replayed = samples[-1][1]
        self.report("large_restart", f"restart of a user with {self.scale.big_contacts:,} "
                    "contacts, first reply", [s[0] for s in samples], "ms", "<= 100 ms",
                    f"; {replayed:,.0f} events replayed", events_replayed=replayed)

    # -- the CSV import --------------------------------------------------------------------

    async def import_csv(self, source: Path, user: str) -> tuple[float, float]:
        """Rows per second of ``contacts import FILE.csv``'s in-process path, open to close,
        and the CPU seconds this process spent meanwhile (a steadier figure on a busy
        machine; PostgreSQL's own work is not in it)."""
        from contacts_cli.cli.imports import ImportJob
        from contacts_cli.cli.render import Output

        job = ImportJob(source=str(source), format=None, user=user, policy="skip",
                        chunk_size=5000, encoding="utf-8-sig", errors_path=None,
                        progress=False, out=Output(json_mode=True))
        started, cpu = time.perf_counter(), time.process_time()
        backend = await self.open()
        try:
            summary = await job.run(backend, dry_run=False, strict=False)
        finally:
            await backend.close()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        if summary.failed or summary.rows != self.scale.import_rows:
            raise SystemExit(f"the import did not go through: {summary!r}")
        return self.scale.import_rows / elapsed, cpu

    async def run_import(self) -> None:
        rows = self.scale.import_rows
        source = self.work / "contacts.csv"
        write_csv(source, rows)
        samples = [await self.import_csv(source, f"import-{run}") for run in range(self.runs)]
        cpu = statistics.median(s[1] for s in samples)
        self.report("import", f"CSV import of {rows:,} rows, end to end",
                    [s[0] for s in samples], "rows/s", ">= 30,000/s",
                    f"; median {cpu:.2f} s of CPU in this process", cpu_seconds=round(cpu, 2))

    # -- memory ----------------------------------------------------------------------------

    def memory(self, hosting: str) -> dict[str, int]:
        """The figures of :func:`memory_child` for ``hosting`` (``cold`` or ``big``), in a
        subprocess of its own."""
        env = {**os.environ, "DATABASE_URL": self.url, "CONTACTS_DB_SCHEMA": self.schema,
               "CONTACTS_DATA_DIR": str(self.work / "data")}
        scale = self.scale
        users = scale.cold_users if hosting == "cold" else 1
        proc = subprocess.run([sys.executable, "-m", "bench.service_bench", "--memory-child",
                               hosting, "--memory-users", str(users)],
                              env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"memory child failed: {proc.stderr}")
        figures: dict[str, int] = json.loads(proc.stdout.strip().splitlines()[-1])
        return figures

    async def run_memory(self) -> None:
        await self.seed_cold()
        await self.seed_big()
        scale = self.scale
        for hosting, label in (
            ("cold", f"{scale.cold_users:,} users x {scale.cold_contacts} contacts"),
            ("big", f"one user with {scale.big_contacts:,} contacts"),
        ):
            figures = self.memory(hosting)
            hosted = figures["hosting_kib"] / 1024
            self.results[f"memory_{hosting}"] = {**figures, "unit": "KiB"}
            print(f"{'memory, ' + label:<52}: {hosted:,.1f} MiB resident above the open "
                  f"service ({figures['service_kib'] / 1024:,.1f} MiB above the imports, "
                  f"{figures['imports_kib'] / 1024:,.1f} MiB after them)", flush=True)

    # -- all of it -------------------------------------------------------------------------

    async def run(self, only: set[str]) -> dict[str, Any]:
        self.engine = await open_engine(self.url, schema=self.schema)
        scale = self.scale
        try:
            if "creates" in only:
                await self.run_creates("creates", f"{scale.users} users x "
                                       f"{scale.creates_per_user} creates, all in flight",
                                       scale.users, scale.creates_per_user, ">= 40,000/s")
            if "hot_user" in only:
                await self.run_creates("hot_user", f"1 user x {scale.hot_creates:,} creates, "
                                       "all in flight", 1, scale.hot_creates, ">= 20,000/s")
            if "cold_start" in only:
                await self.run_cold_start()
            if "large_restart" in only:
                await self.run_large_restart()
            if "import" in only:
                await self.run_import()
            if "memory" in only:
                await self.run_memory()
        finally:
            await self.engine.close()
            drop_schema(self.url, self.schema)
        return self.results


async def memory_child(hosting: str, users: int) -> dict[str, int]:
    """Open the service on the schema of the environment, then host ``users`` users (each
    woken by a read) and measure: resident memory after the imports, with the service open,
    and with the users hosted (after a full collection, so only what they hold counts)."""
    gc.collect()
    imports = vm_rss_kib()
    backend = await LocalBackend.open(Settings.from_env(query_timeout=300.0))
    try:
        gc.collect()
        service = vm_rss_kib()
        names = [f"cold-{u}" for u in range(users)] if hosting == "cold" else [BIG_USER]
        gate = asyncio.Semaphore(SEED_IN_FLIGHT)

        async def wake(name: str) -> None:
            async with gate:
                await backend.user_count(name)

        await asyncio.gather(*(wake(name) for name in names))
        gc.collect()
        hosting_figure = vm_rss_kib()
    finally:
        await backend.close()
    return {"imports_kib": imports, "service_kib": service - imports,
            "hosting_kib": hosting_figure - service}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (the median)")
    parser.add_argument("--only", default=",".join(WORKLOADS),
                        help=f"comma-separated, among {', '.join(WORKLOADS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--memory-child", choices=("cold", "big"), help=argparse.SUPPRESS)
    parser.add_argument("--memory-users", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    tune_gc()
    if args.memory_child:
        print(json.dumps(asyncio.run(memory_child(args.memory_child, args.memory_users))))
        return 0
    only = {name.strip() for name in args.only.split(",") if name.strip()}
    if unknown := only - set(WORKLOADS):
        parser.error(f"unknown workload(s) {', '.join(sorted(unknown))}; choose from "
                     f"{', '.join(WORKLOADS)}")
    url = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not url:
        raise SystemExit("set DATABASE_URL or TEST_DATABASE_URL")
    bench = Bench(url, QUICK if args.quick else FULL, max(1, args.runs))
    results = asyncio.run(bench.run(only))
    RESULTS.mkdir(exist_ok=True)
    name = "service_bench_quick.json" if args.quick else "service_bench.json"
    (RESULTS / name).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
