"""Cluster benchmark: what several instances on one PostgreSQL cost and give.

Three measurements, each against real ``python -m contacts_cli.http`` processes started by
:func:`bench.http_bench.server_process` (same load generator as ``http_bench``:
:func:`bench.http_bench.run_once` and its raw keep-alive client):

* ``workers``: creates per second through HTTP with ``--workers 1`` and ``--workers 2``,
  alternated run by run in the same minutes (the database and the load generator share the
  machine's cores with the workers); with ``--warmup 0`` each user activates on the worker
  its connection reached, so nothing is forwarded;
* ``forward``: the latency of a create for a user hosted by the instance asked (local) and
  by another instance (forwarded: one more HTTP hop on 127.0.0.1), one client, one request
  at a time, p50 and p99, blocks alternated;
* ``takeover``: from ``kill -9`` of the instance hosting a user to the first successful
  answer for that user from another instance, polled every 50 ms, with the default TTL
  (6 s) unless ``--ttl`` is given; median of ``--takeover-runs``.

    python -m bench.cluster_bench                       # all three
    python -m bench.cluster_bench --only workers --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import time
import uuid
from typing import Any

import httpx
import psycopg

from bench.http_bench import RawClient, run_once, server_process


def _runner() -> Any:
    try:
        import uvloop

        return uvloop.run
    except ImportError:
        return asyncio.run


def bench_workers(database_url: str, runs: int, requests: int, clients: int,
                  warmup: int) -> dict[str, Any]:
    """``warmup`` creates go first on other connections: each user is then active on the
    worker its warm-up connection reached, and the measured connection (which the kernel
    may give to the other worker) is forwarded there half of the time. Without warm-up,
    each user activates where its measured connection lands and nothing is forwarded."""
    results: dict[int, list[float]] = {1: [], 2: []}
    for run in range(runs):
        for workers in (1, 2):
            with server_process(database_url, {"CONTACTS_WORKERS": str(workers)}) as url:
                result = _runner()(run_once(url, clients=clients, users=clients,
                                            requests=requests, warmup=warmup,
                                            kind="raw", tag=f"w{workers}-{run}"))
            print(json.dumps({"workers": workers, "run": run + 1, **result}), flush=True)
            results[workers].append(result["creates_per_s"])
    one, two = statistics.median(results[1]), statistics.median(results[2])
    return {"workers_1_creates_per_s": one, "workers_2_creates_per_s": two,
            "speedup": round(two / one, 2), "runs": runs, "clients": clients, "warmup": warmup}


async def _latencies(url: str, user: str, count: int) -> list[float]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    client = RawClient(parts.hostname or "127.0.0.1", parts.port or 80)
    await client.connect()
    out = []
    try:
        for n in range(count):
            body = json.dumps({"name": f"F {n}"}).encode()
            started = time.perf_counter()
            status, _ = await client.post(f"/api/{user}/contacts", body)
            out.append(time.perf_counter() - started)
            if status != 201:
                raise SystemExit(f"create answered {status}")
    finally:
        await client.close()
    return out


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


def bench_forward(database_url: str, blocks: int, per_block: int) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    local: list[float] = []
    forwarded: list[float] = []
    try:
        with server_process(database_url, {}, schema=schema) as owner, \
                server_process(database_url, {}, schema=schema) as other:
            user = "forward-bench"
            run = _runner()
            run(_latencies(owner, user, 50))  # the owner activates the user
            for _ in range(blocks):
                local += run(_latencies(owner, user, per_block))
                forwarded += run(_latencies(other, user, per_block))
    finally:
        _drop(database_url, schema)
    return {
        "local_p50_ms": _quantile(local, 0.5), "local_p99_ms": _quantile(local, 0.99),
        "forwarded_p50_ms": _quantile(forwarded, 0.5),
        "forwarded_p99_ms": _quantile(forwarded, 0.99),
        "requests_each": len(local),
    }


def bench_takeover(database_url: str, runs: int, ttl: float | None) -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    env = {"CONTACTS_CLUSTER_TTL": str(ttl)} if ttl else {}
    seconds: list[float] = []
    try:
        with server_process(database_url, env, schema=schema) as survivor:
            for run in range(runs):
                user = f"orphan-{run}"
                with server_process(database_url, env, schema=schema) as victim, \
                        httpx.Client(timeout=30) as client:
                    seconds.append(_kill_and_wait(client, victim, survivor, user))
                print(json.dumps({"takeover_run": run + 1, "seconds": round(seconds[-1], 3)}),
                      flush=True)
    finally:
        _drop(database_url, schema)
    return {"kill_to_first_answer_s_median": round(statistics.median(seconds), 3),
            "min_s": round(min(seconds), 3), "max_s": round(max(seconds), 3), "runs": runs,
            "ttl_s": ttl or 6.0}


def _kill_and_wait(client: httpx.Client, victim: str, survivor: str, user: str) -> float:
    """Host ``user`` on ``victim``, kill it with -9, poll ``survivor`` until it answers for
    the user; the seconds in between."""
    created = client.post(f"{victim}/api/{user}/contacts", json={"name": "orphan"})
    assert created.status_code == 201, created.text
    pid = client.get(f"{victim}/api/stats").json()["cluster"]["pid"]
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    while time.monotonic() - killed < 60:
        with contextlib.suppress(httpx.HTTPError):
            if client.get(f"{survivor}/api/{user}/contacts", timeout=10).status_code == 200:
                return time.monotonic() - killed
        time.sleep(0.05)
    raise SystemExit("the orphaned user was not served within 60 s")


def _drop(database_url: str, schema: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL")
                        or os.environ.get("TEST_DATABASE_URL")
                        or "postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--only", choices=["workers", "forward", "takeover"])
    parser.add_argument("--runs", type=int, default=3, help="runs per worker count")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=2_000,
                        help="creates before measuring, on other connections (0: none)")
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--per-block", type=int, default=1000)
    parser.add_argument("--takeover-runs", type=int, default=5)
    parser.add_argument("--ttl", type=float, default=None, help="CONTACTS_CLUSTER_TTL")
    args = parser.parse_args(argv)
    summary: dict[str, Any] = {}
    if args.only in (None, "workers"):
        summary["workers"] = bench_workers(args.database_url, args.runs, args.requests,
                                           args.clients, args.warmup)
    if args.only in (None, "forward"):
        summary["forward"] = bench_forward(args.database_url, args.blocks, args.per_block)
    if args.only in (None, "takeover"):
        summary["takeover"] = bench_takeover(args.database_url, args.takeover_runs, args.ttl)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
