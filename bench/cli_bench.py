"""CLI benchmarks, measured from process start to exit as a user sees them.

* ``contacts add`` in-process (``--local``: starts the actor system, recovers the user's
  journal, persists, exits) and in client mode (``--server``: a running ``contacts serve``);
  targets: under 400 ms and under 150 ms;
* ``contacts import`` of a generated CSV of 100,000 contacts (target: >= 20,000 contacts/s
  end to end, process start to exit).

Runs against ``DATABASE_URL`` or ``TEST_DATABASE_URL`` (else an embedded PostgreSQL in a
temporary directory, started once and kept up while measuring) in a fresh schema that is
dropped at the end. Prints medians of ``--runs`` runs; writes bench/results/cli_bench.json.

``--against DIR`` also measures the ``contacts add`` figures of another checkout (its
``.venv/bin/contacts``, e.g. the commit before a change), alternating the two run by run,
each client against its own checkout's server, so both see the same load on a machine whose
speed drifts.

    python -m bench.cli_bench [--runs 11] [--rows 100000] [--import-modes local,client]
                              [--against ../base]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

CONTACTS = str(Path(sys.executable).with_name("contacts"))
RESULTS = Path(__file__).with_name("results")


def timed(cmd: Sequence[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}")
    return elapsed


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "min_ms": round(ordered[0] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
        "runs": len(ordered),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(env: dict[str, str], data_dir: Path,
                 contacts: str = CONTACTS) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen([contacts, "serve", "--port", str(port), "--log-level", "warning"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    server_file = data_dir / "server.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"contacts serve exited: {proc.stderr.read()}")  # type: ignore[union-attr]
        if server_file.exists() and json.loads(server_file.read_text())["pid"] == proc.pid:
            return proc, f"http://127.0.0.1:{port}"
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("contacts serve did not start within 60 s")


def write_csv(path: Path, rows: int) -> None:
    """Realistic rows: 90 % with an email, a third with a phone, some labels, non-ASCII."""
    rng = random.Random(42)
    first = ["Ada", "Grace", "Zoë", "José", "Ørjan", "Li", "Amara", "Søren", "Chloé", "Kofi"]
    last = ["Lovelace", "Hopper", "Åström", "Núñez", "Ødegård", "Wei", "Okafor", "Kierkegaard"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "emails", "phones", "company", "labels"])
        for i in range(rows):
            name = f"{rng.choice(first)} {rng.choice(last)} {i}"
            email = f"person{i}@example.org" if i % 10 else ""
            phone = f"+1 415 555 {i % 10000:04d}" if i % 3 == 0 else ""
            labels = "friends;work" if i % 7 == 0 else ""
            writer.writerow([name, email, phone, f"Company {i % 500}", labels])


def drop_schema(url: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def alternate(checkouts: dict[str, str], runs: int,
              command: Callable[[str, int], list[str]], env: dict[str, str],
              ) -> dict[str, list[float]]:
    """``runs`` timings of ``command(checkout name, run number)`` per checkout, alternating
    which checkout goes first."""
    samples: dict[str, list[float]] = {name: [] for name in checkouts}
    names = list(checkouts)
    for i in range(runs):
        for name in names if i % 2 == 0 else names[::-1]:
            samples[name].append(timed(command(name, i), env))
    return samples


def report(results: dict[str, Any], key: str, label: str, samples: dict[str, list[float]],
           target_ms: int) -> None:
    """Record and print the medians (this checkout's, then the other's if measured)."""
    for name, taken in samples.items():
        figures = results[f"{key}_{name}" if name else key] = summary(taken)
        which = f" [{name}]" if name else ""
        print(f"{label + which:<25}: median {figures['median_ms']} ms (min {figures['min_ms']}, "
              f"max {figures['max_ms']}; target < {target_ms} ms)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=11, help="runs per latency figure")
    parser.add_argument("--rows", type=int, default=100_000, help="contacts in the import")
    parser.add_argument("--import-modes", default="local",
                        help="comma-separated: local, client (or none)")
    parser.add_argument("--against", type=Path, metavar="DIR",
                        help="another checkout whose `contacts add` to measure alternately")
    args = parser.parse_args(argv)
    checkouts = {"": CONTACTS}
    if args.against is not None:
        checkouts["against"] = str(args.against.resolve() / ".venv" / "bin" / "contacts")

    work = Path(tempfile.mkdtemp(prefix="cli-bench-"))
    embedded = None
    url = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not url:
        from persistence.embedded import start_embedded

        embedded = start_embedded(work / "pg", "bench")
        url = embedded.url
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    data_dir = work / "data"
    env = {**os.environ, "DATABASE_URL": url, "CONTACTS_DB_SCHEMA": schema,
           "CONTACTS_DATA_DIR": str(data_dir), "CONTACTS_URL": "", "NO_COLOR": "1"}
    # Python's default: modules are compiled once and loaded from __pycache__ afterwards (the
    # warm-up runs below write it), as in any normal installation.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    results: dict[str, Any] = {"database": "embedded" if embedded else "DATABASE_URL",
                               "runs": args.runs,
                               "bytecode_cache": "PYTHONDONTWRITEBYTECODE" not in env}
    servers: list[subprocess.Popen[str]] = []
    try:
        timed([CONTACTS, "--local", "db", "migrate"], env)
        for contacts in checkouts.values():  # warm-up (and __pycache__)
            timed([contacts, "--local", "ls", "-u", "bench-add"], env)

        local = alternate(checkouts, args.runs, lambda name, i: [
            checkouts[name], "--local", "add", f"Local {i}", "-e", f"local{i}@example.org",
            "-u", "bench-add"], env)
        report(results, "add_in_process", "contacts add, in-process", local, 400)

        urls: dict[str, str] = {}
        for name, contacts in checkouts.items():
            # One server per checkout, each announced in its own data directory.
            served = data_dir / name if name else data_dir
            server, urls[name] = start_server({**env, "CONTACTS_DATA_DIR": str(served)}, served,
                                              contacts)
            servers.append(server)
            timed([contacts, "--server", urls[name], "ls", "-u", f"bench-add{name}"],
                  env)  # warm the actor
        server_url = urls[""]
        client = alternate(checkouts, args.runs, lambda name, i: [
            checkouts[name], "--server", urls[name], "add", f"Client {i}",
            "-e", f"client{i}@example.org", "-u", f"bench-add{name}"], env)
        report(results, "add_client_mode", "contacts add, client mode", client, 150)

        modes = [m for m in args.import_modes.split(",") if m and m != "none"]
        if modes:
            source = work / "contacts.csv"
            write_csv(source, args.rows)
            for mode in modes:
                prefix = ["--local"] if mode == "local" else ["--server", server_url]
                elapsed = timed([CONTACTS, *prefix, "import", str(source), "-q",
                                 "-u", f"bench-import-{mode}"], env)
                rate = args.rows / elapsed
                results[f"import_{mode}"] = {"rows": args.rows, "seconds": round(elapsed, 2),
                                             "contacts_per_second": round(rate)}
                print(f"contacts import {args.rows:,} rows, {mode}: {elapsed:.1f} s, "
                      f"{rate:,.0f} contacts/s (target >= 20,000)", flush=True)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
        drop_schema(url, schema)
        if embedded is not None:
            embedded.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cli_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
