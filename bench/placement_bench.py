"""What cluster placement costs: the fence in a group-commit-shaped statement, acquisitions
(an activation) and renewals.

    python -m bench.placement_bench --url postgresql://postgres@127.0.0.1:5432/test
    python -m bench.placement_bench --batches 1,50,500 --seconds 2 --runs 5

Scenarios (each run on a fresh schema, dropped afterwards; medians of ``--runs``):

* ``fence``: one statement per batch of ``B`` persistence ids, each bumping its ``highest``
  row as the journal writer's ``upd`` CTE does; ``plain`` without a fence, ``fenced`` with
  the fence CTE joined in (batches/s, alternated run by run);
* ``acquire``: acquire + release of distinct keys by one instance, one at a time (pairs/s);
* ``renew``: heartbeats of one instance, one at a time (renewals/s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import psycopg
from psycopg import sql

from persistence.placement import Lease, PlacementStore, fence_cte
from persistence.postgres import PostgresConfig, PostgresEngine


def _statements(store: PlacementStore) -> dict[str, sql.Composed]:
    highest = sql.Identifier(store.config.schema, "highest")
    req = (
        "req AS (SELECT * FROM ROWS FROM (jsonb_array_elements_text(%(pids)s::jsonb), "
        "jsonb_array_elements_text(%(expected)s::jsonb), "
        "jsonb_array_elements_text(%(owners)s::jsonb), "
        "jsonb_array_elements_text(%(epochs)s::jsonb)) "
        "AS r(persistence_id, expected, owner, epoch))"
    )
    upd = (
        "upd AS (UPDATE {highest} h SET highest = h.highest + 1 FROM req r "
        "WHERE h.persistence_id = r.persistence_id {fenced_only} RETURNING 1) "
        "SELECT count(*) FROM upd"
    )
    plain = sql.SQL("WITH " + req + ", " + upd).format(highest=highest, fenced_only=sql.SQL(""))
    fenced = sql.SQL("WITH " + req + ", {fence}, " + upd).format(
        highest=highest,
        fence=fence_cte(store.names),
        fenced_only=sql.SQL("AND r.persistence_id IN (SELECT persistence_id FROM fenced)"),
    )
    return {"plain": plain, "fenced": fenced}


async def _rate(action: Callable[[], Awaitable[None]], seconds: float) -> float:
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        await action()
        done += 1
    return done / (time.perf_counter() - start)


async def run(url: str, batches: list[int], seconds: float, runs: int) -> None:
    schema = f"bench_placement_{uuid.uuid4().hex[:10]}"
    engine = PostgresEngine(url, schema=schema)
    await engine.start()
    try:
        async with PlacementStore(PostgresConfig(url, schema=schema)) as store:
            me = await store.register("127.0.0.1:1", ttl=600)
            leases: list[Lease] = []
            for i in range(max(batches)):
                lease = await store.acquire(f"user-{i}", me.instance_id)
                assert isinstance(lease, Lease)
                leases.append(lease)
            statements = _statements(store)
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute(
                    sql.SQL("INSERT INTO {} SELECT key, 0 FROM {}").format(
                        sql.Identifier(schema, "highest"), store.names.lease
                    )
                )
                for size in batches:
                    batch = leases[:size]
                    params: dict[str, str] = {
                        "pids": json.dumps([lease.key for lease in batch]),
                        "expected": json.dumps([0] * size),
                        "owners": json.dumps([lease.owner for lease in batch]),
                        "epochs": json.dumps([lease.epoch for lease in batch]),
                    }
                    rates: dict[str, list[float]] = {"plain": [], "fenced": []}
                    for _ in range(runs):
                        for kind, statement in statements.items():
                            query = statement.as_bytes(conn)

                            async def once(
                                query: bytes = query, params: dict[str, str] = params
                            ) -> None:
                                await conn.execute(query, params, prepare=True)

                            rates[kind].append(await _rate(once, seconds))
                    plain, fenced = (statistics.median(rates[k]) for k in ("plain", "fenced"))
                    print(
                        f"fence  batch {size:4d}: plain {plain:8.0f}/s  fenced {fenced:8.0f}/s  "
                        f"({(fenced / plain - 1) * 100:+.1f} %, {runs} runs each)"
                    )
            counter = iter(range(10**9))

            async def acquire_release() -> None:
                lease = await store.acquire(f"fresh-{next(counter)}", me.instance_id)
                assert isinstance(lease, Lease)
                await store.release(lease)

            async def renew() -> None:
                await store.heartbeat(me.instance_id)

            for name, action in (("acquire+release", acquire_release), ("renew", renew)):
                measured = [await _rate(action, seconds) for _ in range(runs)]
                print(f"{name:15s}: {statistics.median(measured):8.0f}/s ({runs} runs)")
    finally:
        await engine.drop_schema()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL"),
        help="PostgreSQL URL (default: TEST_DATABASE_URL, then DATABASE_URL)",
    )
    parser.add_argument("--batches", default="1,50,500")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not args.url:
        parser.error("give --url or set TEST_DATABASE_URL")
    batches = [int(b) for b in args.batches.split(",")]
    asyncio.run(run(args.url, batches, args.seconds, args.runs))


if __name__ == "__main__":
    main()
