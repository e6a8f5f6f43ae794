"""The multi-statement fence's guards that the other tests let through (mutants of
``persistence/postgres/fence.py``; ``make mutation MODULES=fence``).

:func:`check_fence` bounds how long the write's transaction may sit idle holding the lease
row (``hold_at_most`` seconds, set for that transaction only), and runs only inside a live
transaction: not outside one, and not in one that has already failed.
"""

from __future__ import annotations

import psycopg
import pytest
from psycopg.pq import TransactionStatus

from persistence.placement import check_fence
from persistence.postgres import PostgresEngine
from tests.persistence.conftest import StoreFactory
from tests.persistence.test_placement import (  # noqa: F401 (fixtures)
    _held,
    engine,
    raw,
)


async def test_check_fence_bounds_the_idle_time_of_its_transaction_only(
    engine: PostgresEngine,  # noqa: F811
    stores: StoreFactory,
) -> None:
    store = await stores()
    owner = await store.register("a:1", ttl=60)
    lease = await _held(store, "user-1", owner)
    async with await raw(engine) as conn:
        before = await (await conn.execute("SHOW idle_in_transaction_session_timeout")).fetchone()
        async with conn.transaction():
            await check_fence(conn, store.names, lease, hold_at_most=1.5)
            cur = await conn.execute("SHOW idle_in_transaction_session_timeout")
            assert await cur.fetchone() == ("1500ms",)
        after = await (await conn.execute("SHOW idle_in_transaction_session_timeout")).fetchone()
        assert after == before


async def test_check_fence_refuses_a_failed_transaction(
    engine: PostgresEngine,  # noqa: F811
    stores: StoreFactory,
) -> None:
    store = await stores()
    owner = await store.register("a:1", ttl=60)
    lease = await _held(store, "user-1", owner)
    async with await raw(engine) as conn:
        with pytest.raises(ValueError, match="inside the write's transaction"):
            await check_fence(conn, store.names, lease)
        await conn.set_autocommit(False)
        with pytest.raises(psycopg.errors.DivisionByZero):
            await conn.execute("SELECT 1 / 0")
        assert conn.info.transaction_status == TransactionStatus.INERROR
        with pytest.raises(ValueError, match="inside the write's transaction"):
            await check_fence(conn, store.names, lease)
        await conn.rollback()
