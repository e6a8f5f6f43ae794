"""The writer's kept connections: one per batch in flight, held between batches.

Checking a connection out of the pool and back costs about 40 us of Python per batch, as
much as a tenth of the Python work of a batch of 50 single events. So the writer keeps one
connection per batch in flight between batches, always leaving at least one to the pool for
replays and other reads.

A kept connection is checked before each batch as the pool checks its own before a hand-out
(:func:`~persistence.postgres.pool.check_idle_connection`, without a round trip unless its
socket has something to say): after a server restart or a terminated backend, the dead
connection goes back to the pool, which discards it, and the batch takes a fresh one.
"""

from __future__ import annotations

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from persistence.errors import InvalidArgument
from persistence.postgres.pool import check_idle_connection, get_connection

Connection = psycopg.AsyncConnection[TupleRow]


class KeptConnections:
    """Autocommit connections for batches: kept ones that still look healthy, else pooled."""

    def __init__(self, pool: AsyncConnectionPool, keep: int, wait_seconds: float) -> None:
        self._pool = pool
        self._keep = min(keep, pool.max_size - 1)
        self._wait_seconds = wait_seconds
        self._kept: list[Connection] = []
        self._closed = False

    async def acquire(self) -> Connection:
        """A kept connection that passes the pool's check, else one from the pool within
        ``wait_seconds`` (or :class:`~psycopg_pool.PoolTimeout`)."""
        while self._kept:
            conn = self._kept.pop()
            try:
                await check_idle_connection(conn)
            except psycopg.Error:
                await self._pool.putconn(conn)
                continue
            return conn
        conn = await get_connection(self._pool, self._wait_seconds)
        if not conn.autocommit:
            await self._pool.putconn(conn)
            raise InvalidArgument("the group-commit writer needs a pool of autocommit connections")
        return conn

    async def release(self, conn: Connection) -> None:
        """Keep ``conn`` for the next batch, or give it back when enough are kept."""
        if len(self._kept) < self._keep and not self._closed:
            self._kept.append(conn)
        else:
            await self._pool.putconn(conn)

    async def discard(self, conn: Connection) -> None:
        """Give back a connection whose statement failed: the pool decides whether a broken
        or busy connection is closed and replaced."""
        await self._pool.putconn(conn)

    async def close(self) -> None:
        """Give every kept connection back to the pool and keep no more."""
        self._closed = True
        kept, self._kept = self._kept, []
        for conn in kept:
            await self._pool.putconn(conn)
