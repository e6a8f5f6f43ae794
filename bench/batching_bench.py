"""Creates per second with every create in flight at once, through ``LocalBackend``.

The two write workloads of issue 12, measured as a user would: validation, the user's
persistent actor (with command batching where the code under test has it), the
group-committed PostgreSQL journal with ``synchronous_commit=on``:

* ``1x5000``: one user, 5,000 creates all in flight (one actor's mailbox holds them all);
* ``100x100``: 100 users, 100 creates each, all in flight.

Each run uses users that do not exist yet (their actors start empty) in one schema of
``DATABASE_URL`` or ``TEST_DATABASE_URL``, dropped at the end. Prints the median of
``--runs`` runs of each workload, and the appends the engine was asked for.

    python -m bench.batching_bench [--runs 5] [--only 1x5000]
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

from contacts_cli.backends.local import LocalBackend
from contacts_cli.process import tune_gc
from contacts_cli.service.settings import Settings
from persistence.factory import open_engine

WORKLOADS = {"1x5000": (1, 5000), "100x100": (100, 100)}


class AppendCounter:
    """Counts the engine's ``append`` calls, wrapping the method on the instance (the
    engine stays a ``PostgresEngine``, so cluster placement applies as in production)."""

    def __init__(self, engine: Any) -> None:
        self.appends = 0
        inner = engine.append

        async def append(*args: Any, **kwargs: Any) -> Any:
            self.appends += 1
            return await inner(*args, **kwargs)

        engine.append = append


async def workload(backend: LocalBackend, users: int, creates: int, run: int) -> float:
    names = [f"b{run}-{uuid.uuid4().hex[:8]}-{u}" for u in range(users)]
    for name in names:  # start each actor first: the run measures the writes, not recovery
        await backend.user_count(name)
    started = time.perf_counter()
    await asyncio.gather(*(
        backend.create(name, {"name": f"Person {i}", "emails": [f"p{i}@example.org"]})
        for i in range(creates) for name in names
    ))
    return users * creates / (time.perf_counter() - started)


async def main(runs: int, only: list[str]) -> None:
    url = os.environ.get("DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not url:
        raise SystemExit("set DATABASE_URL or TEST_DATABASE_URL")
    schema = f"bench_batch_{uuid.uuid4().hex[:10]}"
    settings = Settings.from_env(database_url=url, db_schema=schema,
                                 data_dir=Path(tempfile.mkdtemp(prefix="batch-bench-")),
                                 query_timeout=120.0)
    engine = await open_engine(url, schema=schema)
    counting = AppendCounter(engine)
    try:
        backend = await LocalBackend.open(settings, engine=engine)
        try:
            for name in only:
                users, creates = WORKLOADS[name]
                rates = []
                counting.appends = 0
                for run in range(runs):
                    rates.append(await workload(backend, users, creates, run))
                print(f"{name}: median {statistics.median(rates):,.0f} creates/s over {runs} "
                      f"runs (min {min(rates):,.0f}, max {max(rates):,.0f}); "
                      f"{counting.appends / runs:,.0f} appends per run", flush=True)
        finally:
            await backend.close()
    finally:
        await engine.close()
        import psycopg
        from psycopg import sql

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(schema)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", action="append", choices=sorted(WORKLOADS))
    args = parser.parse_args()
    tune_gc()
    asyncio.run(main(args.runs, args.only or list(WORKLOADS)))
    sys.exit(0)
