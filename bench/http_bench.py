"""HTTP create benchmark: latency (p50, p99) and throughput of ``POST /api/{user}/contacts``.

Starts ``python -m contacts_cli.http`` as a separate process on a free port (on a fresh schema
of ``DATABASE_URL``/``TEST_DATABASE_URL``, dropped afterwards), or uses ``--url``, and drives it
with ``--clients`` concurrent keep-alive connections from this process. Each client creates
contacts for its own user by default (``--users``), so the journal's group commit can batch
the writes of different users into one transaction.

The default load generator is a minimal HTTP/1.1 client on asyncio streams, so that the client
costs little CPU on a small machine; ``--client httpx`` uses ``httpx.AsyncClient`` instead.

    python bench/http_bench.py                      # 16 clients, 3 runs of 20,000 creates
    python bench/http_bench.py --runs 5 --requests 30000 --client httpx
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def server_process(database_url: str, extra_env: dict[str, str], *,
                   schema: str | None = None) -> Iterator[str]:
    """A service process on its own schema (or ``schema``, shared with other processes);
    yields its base URL, drops the schema after (only one it made up)."""
    import httpx
    import psycopg

    own = schema is None
    schema = schema or f"bench_{uuid.uuid4().hex[:12]}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTACTS_")}
    env.update(DATABASE_URL=database_url, CONTACTS_DB_SCHEMA=schema, CONTACTS_PORT=str(port),
               CONTACTS_HOST="127.0.0.1", **extra_env)
    process = subprocess.Popen([sys.executable, "-m", "contacts_cli.http", "--log-level",
                                "warning"], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"the server exited with {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("the server did not become ready within 60 s")
            time.sleep(0.1)
        yield url
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=60)
        if own:
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class RawClient:
    """One keep-alive HTTP/1.1 connection: just enough protocol for JSON requests."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()


async def run_once(url: str, *, clients: int, users: int, requests: int, warmup: int,
                   kind: str, tag: str) -> dict[str, Any]:
    """One measured run: ``warmup`` unmeasured creates, then ``requests`` measured ones."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    latencies: list[float] = []
    errors = 0
    counter = 0

    async def worker(n: int, total: int, measure: bool) -> None:
        nonlocal errors, counter
        path = f"/api/bench-{tag}-{n % users}/contacts"
        http: Any
        if kind == "httpx":
            import httpx

            http = httpx.AsyncClient(base_url=url, timeout=30)
        else:
            http = RawClient(host, port)
            await http.connect()
        try:
            while counter < total:
                counter += 1
                body = json.dumps({"name": f"Bench {counter}",
                                   "emails": [f"b{counter}@example.com"]}).encode()
                started = time.perf_counter()
                if kind == "httpx":
                    response = await http.post(path, content=body,
                                               headers={"content-type": "application/json"})
                    status = response.status_code
                else:
                    status, _ = await http.post(path, body)
                elapsed = time.perf_counter() - started
                if status != 201:
                    errors += 1
                elif measure:
                    latencies.append(elapsed)
        finally:
            await (http.aclose() if kind == "httpx" else http.close())

    if warmup:
        await asyncio.gather(*(worker(n, warmup, False) for n in range(clients)))
    counter = 0
    started = time.perf_counter()
    await asyncio.gather(*(worker(n, requests, True) for n in range(clients)))
    wall = time.perf_counter() - started
    ordered = sorted(latencies)

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else 0.0

    return {
        "requests": len(latencies), "errors": errors, "seconds": round(wall, 3),
        "creates_per_s": round(len(latencies) / wall, 1) if wall else 0.0,
        "p50_ms": round(q(0.50), 2), "p99_ms": round(q(0.99), 2), "max_ms": round(q(1.0), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="benchmark a running service instead of starting one")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL")
                        or os.environ.get("TEST_DATABASE_URL")
                        or "postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--users", type=int, default=None,
                        help="distinct users (default: one per client)")
    parser.add_argument("--requests", type=int, default=20_000, help="measured creates per run")
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    args = parser.parse_args(argv)
    users = args.users or args.clients
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run

    def runs(url: str) -> list[dict[str, Any]]:
        results = []
        for run in range(args.runs):
            result = runner(run_once(url, clients=args.clients, users=users,
                                     requests=args.requests, warmup=args.warmup,
                                     kind=args.client, tag=f"{uuid.uuid4().hex[:6]}-{run}"))
            print(json.dumps({"run": run + 1, **result}), flush=True)
            results.append(result)
        return results

    if args.url:
        results = runs(args.url)
    else:
        with server_process(args.database_url, {}) as url:
            results = runs(url)
    summary = {
        key: statistics.median(r[key] for r in results)
        for key in ("creates_per_s", "p50_ms", "p99_ms")
    }
    print(json.dumps({"median_of_runs": len(results), "clients": args.clients, "users": users,
                      "client": args.client, **summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
