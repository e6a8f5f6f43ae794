"""Starvation: how long one user's requests hold the event loop, and what the others feel.

Seeds a user with ``--contacts`` contacts (default 100,000: an import in 2,000-row chunks,
resumed where it stopped if the instance loses its lease on a loaded machine) in a schema of
``DATABASE_URL``/``TEST_DATABASE_URL`` (``--schema NAME``: one seeded before, or half-way;
``--keep`` keeps a new one), plus a small user with one contact. Then starts the service as
a process of its own with a **loop-lag probe**: a task that sleeps 1 ms at a time and logs
every wake-up more than 2 ms late, i.e. every time something held the event loop. This
process drives phases of ``--seconds`` each, while one client GETs the small user's contact
over and over (its latency is what "the others" feel), and reads the probe's log:

* ``idle``: the small user's GETs alone (the baseline);
* ``search``: 4 clients search the big user for a term no contact has (after one search to
  warm up: the old code's cache, the new code's index);
* ``history``: 2 clients ask for the history of one of the big user's contacts;
* ``as_of``: 3 clients ask for the big user's contacts as of now (bodies read, discarded).

Per phase: the loop's longest stall, the other user's GET latency (median, p99), the
requests done, and the service's peak resident memory during the phase (sampled every
50 ms). ``--python PATH`` serves with another interpreter, e.g. the virtualenv of a worktree
of the old code, on the same seeded schema: the before and after of one change.

    python -m bench.starvation_bench --keep                     # seeds, prints the schema
    python -m bench.starvation_bench --schema NAME              # this code
    python -m bench.starvation_bench --schema NAME --python ../old/.venv/bin/python
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

BIG, SMALL = "big", "small"
CLUSTER_TTL = 30.0
"""Long, so that a loaded machine (or the old code's long stalls) does not cost the instance
its place in the cluster in the middle of a run."""
NO_MATCH = "zqxjv"
PROBE_INTERVAL = 0.001
PROBE_REPORTS = 0.002
"""A wake-up later than this (beyond the interval) is logged as a stall."""


# -- the service side: run as a script by path, with the interpreter under test --------------


async def _probe(log: TextIO) -> None:
    last = time.perf_counter()
    while True:
        await asyncio.sleep(PROBE_INTERVAL)
        now = time.perf_counter()
        late = now - last - PROBE_INTERVAL
        if late > PROBE_REPORTS:
            log.write(f"{time.time():.6f} {late:.6f}\n")
        last = now


async def _serve_with_probe(log: TextIO) -> None:
    from contacts_cli.http.server import serve
    from contacts_cli.service.settings import Settings

    probe = asyncio.create_task(_probe(log))
    try:
        await serve(Settings.from_env(), log_level="warning")
    finally:
        probe.cancel()


def serve_main(log_path: str) -> None:
    from contacts_cli.process import tune_gc

    tune_gc()
    with open(log_path, "a", buffering=1) as log:
        try:
            import uvloop
        except ImportError:
            asyncio.run(_serve_with_probe(log))
        else:
            uvloop.run(_serve_with_probe(log))


# -- the driver ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def seed(database_url: str, schema: str, count: int) -> None:
    from contacts_cli.backends.local import LocalBackend
    from contacts_cli.service.settings import Settings

    async def rows(start: int) -> AsyncIterator[dict[str, Any]]:
        for i in range(start, count):
            yield {"name": f"Person {i:06d}",
                   "emails": [f"person{i}@example.org"] if i % 10 else [],
                   "phones": [f"+1 415 555 {i % 10000:04d}"] if i % 3 == 0 else [],
                   "company": f"Company {i % 500}",
                   "labels": ["friends", "work"] if i % 7 == 0 else []}

    settings = Settings(database_url=database_url, db_schema=schema,
                        data_dir=Path(tempfile.mkdtemp()), cluster_ttl=CLUSTER_TTL)
    from contacts_cli.backends.errors import Unavailable
    from contacts_cli.service.ids import persistence_id

    backend = await LocalBackend.open(settings)
    try:
        started = time.perf_counter()
        pid = persistence_id(BIG)
        for _attempt in range(20):  # a loaded machine may cost the instance its lease
            done = await backend.engine.highest_sequence_nr(pid)  # one event per contact
            if done >= count:
                break
            try:  # a retry goes on after the last chunk written
                async for _ in backend.import_rows(BIG, rows(done), chunk_size=2000):
                    pass
            except Unavailable as error:
                print(f"retrying the seed: {error}", flush=True)
                await asyncio.sleep(3)
        else:
            raise SystemExit("the seed did not go through")
        print(f"seeded {count} contacts in {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        await backend.close()


class Service:
    """The service process with its probe; ``stalls(start, end)``: the longest in between."""

    def __init__(self, python: str, database_url: str, schema: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkdtemp()) / "stalls.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTACTS_")}
        env.update(DATABASE_URL=database_url, CONTACTS_DB_SCHEMA=schema,
                   CONTACTS_PORT=str(self.port), CONTACTS_HOST="127.0.0.1",
                   CONTACTS_CLUSTER_TTL=str(CLUSTER_TTL))
        env.pop("PYTHONPATH", None)
        self.process = subprocess.Popen(
            [python, str(Path(__file__).resolve()), "--serve", str(self.log)],
            env=env, cwd=tempfile.gettempdir(),
        )

    def stalls(self, start: float, end: float) -> list[float]:
        if not self.log.exists():
            return []
        found = []
        for line in self.log.read_text().splitlines():
            at, late = map(float, line.split())
            if start <= at <= end:
                found.append(late)
        return found

    def rss_mb(self) -> float:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def phase(
    service: Service, client: Any, seconds: float, load: Callable[[], Awaitable[int]],
    clients: int, other_path: str,
) -> dict[str, Any]:
    """Run ``clients`` copies of ``load`` (each returns bytes read) and the other user's GETs
    for ``seconds`` (requests in flight are finished); the figures of the phase."""
    stop = asyncio.Event()
    latencies: list[float] = []
    done: list[int] = []
    peak = [service.rss_mb()]

    async def loader() -> None:
        while not stop.is_set():
            done.append(await load())

    async def other() -> None:
        while not stop.is_set() or not loaders_done.is_set():
            started = time.perf_counter()
            response = await client.get(other_path)
            response.raise_for_status()
            latencies.append(time.perf_counter() - started)

    async def memory() -> None:
        while not loaders_done.is_set():
            peak.append(service.rss_mb())
            await asyncio.sleep(0.05)

    loaders_done = asyncio.Event()
    start = time.time()
    side = [asyncio.create_task(other()), asyncio.create_task(memory())]
    tasks = [asyncio.create_task(loader()) for _ in range(clients)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    loaders_done.set()
    await asyncio.gather(*side)
    end = time.time()
    stalls = service.stalls(start, end)
    ordered = sorted(latencies)
    return {
        "loop_max_stall_ms": round(1000 * max(stalls, default=0.0), 1),
        "stalls_over_20ms": sum(1 for s in stalls if s > 0.020),
        "other_get_median_ms": round(1000 * statistics.median(ordered), 2),
        "other_get_p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 2),
        "other_gets": len(ordered),
        "requests": len(done),
        "bytes_per_request": round(statistics.median(done)) if done else 0,
        "peak_rss_mb": round(max(peak)),
    }


async def drive(service: Service, seconds: float) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(base_url=service.url, timeout=600, limits=limits) as client:
        deadline = time.monotonic() + 120
        while True:
            if service.process.poll() is not None:
                raise SystemExit(f"the service exited with {service.process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/readyz")).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("the service did not become ready within 120 s")
            await asyncio.sleep(0.2)
        created = await client.post(f"/api/{SMALL}/contacts", json={"name": "Someone else"},
                                    headers={"Idempotency-Key": "starvation-small"})
        small = created.json()["id"]
        other_path = f"/api/{SMALL}/contacts/{small}"
        first = (await client.get(f"/api/{BIG}/contacts", params={"limit": 1})).json()
        contact = first["items"][0]["id"]  # (this also recovers the big user, unmeasured)
        results: dict[str, Any] = {}

        async def nothing() -> int:
            await asyncio.sleep(0.05)
            return 0

        async def get(path: str, **params: str) -> int:
            size = 0
            async with client.stream("GET", path, params=params) as response:
                response.raise_for_status()
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
            return size

        def search() -> Awaitable[int]:
            return get(f"/api/{BIG}/contacts", q=NO_MATCH)

        def history() -> Awaitable[int]:
            return get(f"/api/{BIG}/contacts/{contact}/history")

        def as_of() -> Awaitable[int]:
            return get(f"/api/{BIG}/contacts", as_of=time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                   time.gmtime()))

        results["idle"] = await phase(service, client, seconds, nothing, 1, other_path)
        started = time.time()
        await search()
        results["first_search"] = {
            "seconds": round(time.time() - started, 2),
            "loop_max_stall_ms": round(1000 * max(service.stalls(started, time.time()),
                                                  default=0.0), 1),
        }
        results["search"] = await phase(service, client, seconds, search, 4, other_path)
        results["history"] = await phase(service, client, seconds, history, 2, other_path)
        results["as_of"] = await phase(service, client, seconds, as_of, 3, other_path)
        return results


async def main_async(args: argparse.Namespace) -> int:
    database_url = args.database_url or os.environ.get("DATABASE_URL") or os.environ.get(
        "TEST_DATABASE_URL")
    if not database_url:
        print("set DATABASE_URL or TEST_DATABASE_URL (a PostgreSQL the bench may write to)")
        return 2
    schema = args.schema or f"bench_starve_{uuid.uuid4().hex[:10]}"
    own = args.schema is None
    try:
        await seed(database_url, schema, args.contacts)  # (a seeded schema: nothing to do)
        service = Service(args.python, database_url, schema)
        try:
            results = await drive(service, args.seconds)
        finally:
            service.stop()
        print(json.dumps({"python": args.python, "schema": schema, **results}, indent=1))
    finally:
        if own and not args.keep:
            import psycopg

            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        elif own:
            print(f"kept schema {schema}")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        serve_main(argv[1])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--schema", help="a schema seeded before (with --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the seeded schema")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter that serves (another worktree's virtualenv)")
    parser.add_argument("--database-url")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
