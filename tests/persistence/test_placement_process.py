"""Two processes, one user: the second takes the user over once the first stops renewing
(SIGSTOP, longer than its TTL), and the first, resumed, lands no write and stops serving.

Run as a module, this file is the first process (the child): it registers, takes the
user's lease, renews it, and writes through the fence in a loop, ignoring its own
membership on purpose, as the worst zombie would, until the fence refuses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from persistence.placement import (
    Lease,
    Membership,
    PlacementStore,
    fence_cte,
    fence_params,
)
from persistence.postgres import PostgresConfig, PostgresEngine
from persistence.postgres.fence import FENCE_REQUESTS
from tests.conftest import EngineFactory

ROOT = Path(__file__).resolve().parents[2]
KEY = "user-zombie"
CHILD_TTL = 2.0


def _fenced_insert(store: PlacementStore) -> sql.Composed:
    return sql.SQL(
        "WITH req AS ({requests}), {fenced} INSERT INTO {probe} (key, epoch) "
        "SELECT f.persistence_id, %(epoch)s FROM fenced f RETURNING key"
    ).format(
        requests=FENCE_REQUESTS,
        fenced=fence_cte(store.names),
        probe=sql.Identifier(store.config.schema, "probe"),
    )


async def _child(url: str, schema: str) -> None:
    async with PlacementStore(
        PostgresConfig(url, schema=schema), application_name="placement-child"
    ) as store:
        registration = await store.register("127.0.0.1:9", ttl=CHILD_TTL)
        lease = await store.acquire(KEY, registration.instance_id)
        assert isinstance(lease, Lease)
        membership = Membership(
            store, registration, on_lost=lambda reason: print("lost", flush=True)
        )
        membership.start()
        print("ready", registration.instance_id, lease.epoch, flush=True)
        statement = _fenced_insert(store)
        params = {**fence_params([lease]), "epoch": lease.epoch}
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                cur = await conn.execute(statement, params)
                if not await cur.fetchall():
                    print("fenced", flush=True)
                    break
                await asyncio.sleep(0.05)
        await asyncio.wait_for(membership.lost.wait(), 30)
        await membership.stop()


async def _line(proc: asyncio.subprocess.Process, within: float) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), within)
    if not line:
        raise AssertionError(f"the child exited early (code {await proc.wait()})")
    return line.decode().strip()


async def _count(url: str, schema: str, epoch: int) -> int:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE epoch = %s").format(
                sql.Identifier(schema, "probe")
            ),
            [epoch],
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0


@pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP/SIGCONT")
async def test_a_paused_owner_is_taken_over_and_its_late_writes_are_refused(
    engine_factory: EngineFactory,
) -> None:
    engine: PostgresEngine = await engine_factory()
    url, schema = engine.config.url, engine.config.schema
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("CREATE TABLE {} (key text, epoch bigint)").format(
                sql.Identifier(schema, "probe")
            )
        )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.persistence.test_placement_process",
        url,
        schema,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        word, child_id, child_epoch = (await _line(proc, 60)).split()
        assert word == "ready"
        epoch = int(child_epoch)
        for _ in range(600):  # the child writes while it holds the lease
            if await _count(url, schema, epoch) >= 3:
                break
            await asyncio.sleep(0.05)
        os.kill(proc.pid, signal.SIGSTOP)
        async with PlacementStore(engine.config, application_name="placement-parent") as store:
            me = await store.register("127.0.0.1:10", ttl=60)
            taken = None
            for _ in range(400):  # bounded: the child's TTL plus slack on a loaded machine
                result = await store.acquire(KEY, me.instance_id)
                if isinstance(result, Lease):
                    taken = result
                    break
                await asyncio.sleep(0.1)
            assert taken is not None, "the paused owner was never taken over"
            assert taken.epoch == epoch + 1 and taken.taken_over_from == child_id
            landed_before = await _count(url, schema, epoch)
            assert landed_before >= 3
            os.kill(proc.pid, signal.SIGCONT)
            heard = {await _line(proc, 30), await _line(proc, 30)}
            assert heard == {"fenced", "lost"}
            assert await asyncio.wait_for(proc.wait(), 30) == 0
            assert await _count(url, schema, epoch) == landed_before
            status = await store.status()
            assert status.takeovers_last_hour == 1
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
            await proc.wait()


if __name__ == "__main__":
    asyncio.run(_child(sys.argv[1], sys.argv[2]))
