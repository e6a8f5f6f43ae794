"""The connection pool, tuned to come back promptly after the server restarts.

psycopg-pool replaces a lost connection in the background with exponential back-off, and
a request only waits for that. After an outage of a few seconds the next attempt can be
seconds away although the server is back. So lost connections are given up after a short
``RECONNECT_WINDOW``, and :func:`connection` asks the pool in short slices: every new ask
lets the pool start a fresh, immediate attempt.

A connection is checked before every hand-out, but without a round trip (which cost as much
as a group-commit batch's own statement): see :func:`check_idle_connection`.

:class:`Connections` is how the engine's queries take a connection: a failure to get or
keep one becomes :class:`~persistence.errors.StorageUnavailable` naming the server.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from time import monotonic

from psycopg import AsyncConnection, InterfaceError, OperationalError
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from persistence.errors import StorageUnavailable
from persistence.postgres.config import PostgresConfig, connection_error, describe_target

CONNECTION_ERRORS = (OperationalError, InterfaceError, PoolTimeout)
"""What the driver and the pool raise when the server cannot be reached or is lost."""

RECONNECT_WINDOW = 1.0
"""Seconds the pool retries replacing a lost connection before leaving it to new requests."""

ASK_SLICE = 0.25
"""Seconds of one ask to the pool while a request waits for a connection."""


class ShutdownGuard:
    """Closes what owns connection pools when the event loop's shutdown cancels every task.

    ``asyncio.run`` cancels every task when its coroutine ends. A script that never closed
    its engine (it crashed part-way, or forgot) would then wait for ever: the pools'
    maintenance workers survive a cancellation by psycopg_pool's design (they catch
    ``CancelledError``; psycopg/psycopg#1345, #1401), and closing the pool is what stops
    them. The guard is a task that waits for ever; cancelled while still armed, it awaits
    ``close``. The owner's own close calls :meth:`disarm` first.
    """

    def __init__(self, close: Callable[[], Awaitable[None]], name: str) -> None:
        self._close = close
        self._task: asyncio.Task[None] | None = None
        self._task = asyncio.get_running_loop().create_task(self._wait(), name=name)

    async def _wait(self) -> None:
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            if self._task is not None:  # still armed: the loop is shutting down
                self._task = None
                await self._close()

    def disarm(self) -> None:
        """The owner closes by itself: the guard ends without closing anything."""
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()


def make_pool(config: PostgresConfig, application_name: str) -> AsyncConnectionPool:
    """An unopened pool of autocommit connections, each checked before it is handed out."""
    return AsyncConnectionPool(
        config.url,
        min_size=config.pool_min_size,
        max_size=config.pool_max_size,
        kwargs={"autocommit": True, "application_name": application_name},
        check=check_idle_connection,
        configure=_configure,
        timeout=config.connect_timeout,
        reconnect_timeout=RECONNECT_WINDOW,
        name=application_name,
        open=False,
    )


async def _configure(conn: AsyncConnection[object]) -> None:
    """Sessions in UTC: timestamps then load without a per-value time-zone conversion
    (about a third of a replayed row's decoding cost); they are the same instants."""
    await conn.execute("SET TimeZone = 'UTC'")


async def check_idle_connection(conn: AsyncConnection[object]) -> None:
    """Raise if ``conn`` is broken; cost a round trip only when its socket says something.

    An idle, healthy connection has nothing to read. A server that terminated the backend,
    shut down or crashed leaves the socket readable (an error message, end of file or a
    reset), so only then the pool's full check (an empty query) runs and fails. Anything
    the server sent unasked (a notice, a parameter change) costs one full check, no more.
    """
    if conn.closed or conn.broken:
        raise OperationalError("the connection is closed")
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN | select.POLLPRI)
    if poller.poll(0):
        await AsyncConnectionPool.check_connection(conn)


async def get_connection(
    pool: AsyncConnectionPool, wait_seconds: float
) -> AsyncConnection[TupleRow]:
    """A pooled connection within ``wait_seconds``, or :class:`PoolTimeout`; the caller
    gives it back with ``pool.putconn``."""
    deadline = monotonic() + wait_seconds
    while True:
        left = deadline - monotonic()
        try:
            conn: AsyncConnection[TupleRow] = await pool.getconn(
                timeout=max(min(ASK_SLICE, left), 0.001)
            )
        except PoolTimeout:
            if deadline - monotonic() <= 0:
                raise PoolTimeout(f"no connection within {wait_seconds:g} s") from None
            continue
        return conn


@asynccontextmanager
async def connection(
    pool: AsyncConnectionPool, wait_seconds: float
) -> AsyncIterator[AsyncConnection[TupleRow]]:
    """A pooled connection within ``wait_seconds``, or :class:`PoolTimeout`."""
    conn = await get_connection(pool, wait_seconds)
    try:
        yield conn
    finally:
        await pool.putconn(conn)


class Connections:
    """The engine's pool (``None`` until the engine starts) and the one way its queries
    take a connection from it."""

    def __init__(self, config: PostgresConfig) -> None:
        self.config = config
        self.pool: AsyncConnectionPool | None = None

    @asynccontextmanager
    async def __call__(self, action: str) -> AsyncIterator[AsyncConnection[TupleRow]]:
        """A pooled connection for ``action`` (named in every error); a lost server or an
        exhausted pool raise :class:`~persistence.errors.StorageUnavailable`."""
        if self.pool is None:
            raise StorageUnavailable(
                f"{action}: the engine for {describe_target(self.config.url)} is not started"
            )
        try:
            async with connection(self.pool, self.config.connect_timeout) as conn:
                yield conn
        except CONNECTION_ERRORS as exc:
            raise connection_error(self.config.url, f"{action}: cannot reach", exc) from None
