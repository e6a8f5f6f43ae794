"""The journal's queries besides append: replay and by-tag streaming, highest, deletes, ids.

Replay and by-tag reads stream in keyset pages, each its own short query (the next page is
fetched while the caller handles this one), so memory stays flat at two pages and no
connection is held while the caller processes events. By-tag reads return only events of
finished transactions and first wait for the transactions running at their start (see
:mod:`persistence.postgres.ordering`), so a reader never skips an event committed late.
Appends are the writer's (:mod:`persistence.postgres.writer`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from persistence.engine import StoredEvent, check_range
from persistence.errors import LeaseLost, UnexpectedResponse
from persistence.leases import Lease
from persistence.postgres import ordering
from persistence.postgres.events import events_from_rows
from persistence.postgres.fence import FENCE_REQUESTS, fence_cte, fence_params
from persistence.postgres.ordering import HORIZON_SQL
from persistence.postgres.placement_tables import PlacementNames
from persistence.postgres.pool import Connections
from persistence.postgres.schema import Names

EVENT_COLUMN_NAMES = (
    "persistence_id",
    "sequence_nr",
    "ordering",
    "created_at",
    "type",
    "version",
    "payload",
    "tags",
    "writer",
)


def event_columns(table: str | None = None) -> sql.Composable:
    """The event columns in :func:`~persistence.postgres.events.events_from_rows` order: the
    payload as JSON text, and empty tags as NULL (no array to decode for most events)."""

    def column(name: str) -> sql.Composable:
        ident = sql.Identifier(*filter(None, (table, name)))
        if name == "payload":
            return sql.SQL("{}::text").format(ident)
        if name == "tags":
            return sql.SQL("NULLIF({}, '{{}}')").format(ident)
        return ident

    return sql.SQL(", ").join(column(c) for c in EVENT_COLUMN_NAMES)


async def _snapshot_bounds(conn: psycopg.AsyncConnection[TupleRow]) -> tuple[int, int]:
    """``xmin`` and ``xmax`` of a fresh snapshot: every transaction below ``xmin`` has
    finished, and every transaction that gets an id from now on gets one of at least ``xmax``."""
    cur = await conn.execute(
        "SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint "
        "FROM pg_current_snapshot() AS s"
    )
    row = await cur.fetchone()
    if row is None:
        raise UnexpectedResponse("pg_current_snapshot() returned no row")
    return int(row[0]), int(row[1])


class JournalQueries:
    """The journal's reads and deletes on one schema, through the engine's connections."""

    def __init__(self, connect: Connections, names: Names, page_size: int) -> None:
        self._connect = connect
        self._names = names
        self._page_size = page_size
        self._sql_replay = sql.SQL(
            "SELECT {cols} FROM {journal} WHERE persistence_id = %s AND sequence_nr >= %s "
            "AND sequence_nr <= %s ORDER BY sequence_nr LIMIT %s"
        ).format(cols=event_columns(), journal=names.journal)
        self._sql_by_tag = sql.SQL(
            "SELECT {cols} FROM {tag} t JOIN {journal} j "
            "ON j.persistence_id = t.persistence_id AND j.sequence_nr = t.sequence_nr "
            "WHERE t.tag = %s AND t.ordering > %s AND t.ordering < " + HORIZON_SQL + " "
            "ORDER BY t.ordering LIMIT %s"
        ).format(cols=event_columns("j"), tag=names.event_tag, journal=names.journal)

    async def replay(
        self,
        persistence_id: str,
        from_sequence_nr: int,
        to_sequence_nr: int,
        max_count: int | None,
    ) -> AsyncIterator[StoredEvent]:
        if not check_range(from_sequence_nr, to_sequence_nr, max_count):
            return
        async for page in self._stream(
            f"replay of {persistence_id!r}",
            self._sql_replay,
            lambda key, limit: [persistence_id, key, to_sequence_nr, limit],
            max(from_sequence_nr, 1),
            lambda row: int(row[1]) + 1,
            max_count,
        ):
            for event in page:
                yield event

    async def events_by_tag(
        self, tag: str, after_ordering: int, max_count: int | None
    ) -> AsyncIterator[StoredEvent]:
        if max_count is not None and max_count <= 0:
            return
        await self._await_horizon(f"events tagged {tag!r}")
        async for page in self._stream(
            f"events tagged {tag!r}",
            self._sql_by_tag,
            lambda key, limit: [tag, key, limit],
            after_ordering,
            lambda row: int(row[2]),
            max_count,
        ):
            for event in page:
                yield event

    async def _stream(
        self,
        action: str,
        query: sql.Composed,
        params: Callable[[int, int], list[object]],
        key: int,
        next_key: Callable[[TupleRow], int],
        max_count: int | None,
    ) -> AsyncIterator[list[StoredEvent]]:
        """Stream the pages of a keyset-paged query, fetching the next page while this one
        is consumed (pages, not events: one async-generator hop per event is enough).

        At most two pages are held; no connection is held while the caller handles events.
        """
        page_size = self._page_size
        remaining = max_count

        async def fetch(key: int, limit: int) -> list[TupleRow]:
            async with self._connect(action) as conn:
                cur = conn.cursor(binary=True)
                await cur.execute(query, params(key, limit))
                return await cur.fetchall()

        limit = page_size if remaining is None else min(page_size, remaining)
        pending: asyncio.Task[list[TupleRow]] | None = asyncio.ensure_future(fetch(key, limit))
        try:
            while pending is not None:
                rows = await pending
                pending = None
                if remaining is not None:
                    remaining -= len(rows)
                if len(rows) == limit and (remaining is None or remaining > 0):
                    limit = page_size if remaining is None else min(page_size, remaining)
                    pending = asyncio.ensure_future(fetch(next_key(rows[-1]), limit))
                yield events_from_rows(rows)
        finally:
            if pending is not None:
                # The page fetched ahead is not wanted. Wait for it without taking its outcome:
                # a cancellation of *this* task that lands here must still propagate (a
                # suppressing ``await pending`` swallowed it, and asyncio.run's shutdown hung).
                pending.cancel()
                await asyncio.wait([pending])
                if not pending.cancelled():
                    pending.exception()  # retrieved: a failed read-ahead is not worth a warning

    async def _await_horizon(self, action: str) -> None:
        """Wait (at most :data:`~persistence.postgres.ordering.HORIZON_WAIT` seconds) until
        every transaction running now has finished, so that a by-tag read returns what was
        committed before it started.

        Usually one round trip: nothing older is running, or it commits within milliseconds.
        After the wait, events of transactions still open are held back, never skipped.
        """
        deadline = time.monotonic() + ordering.HORIZON_WAIT
        pause = 0.001
        async with self._connect(action) as conn:
            horizon, target = await _snapshot_bounds(conn)
            while horizon < target and time.monotonic() < deadline:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.05)
                horizon, _ = await _snapshot_bounds(conn)

    async def highest_sequence_nr(self, persistence_id: str) -> int:
        async with self._connect(f"highest sequence_nr of {persistence_id!r}") as conn:
            cur = await conn.execute(
                sql.SQL("SELECT highest FROM {} WHERE persistence_id = %s").format(
                    self._names.highest
                ),
                [persistence_id],
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def delete_events_to(
        self, persistence_id: str, to_sequence_nr: int, fence: Lease | None = None
    ) -> None:
        """Delete the events (and their by-tag rows) up to ``to_sequence_nr``; with
        ``fence``, in the same statement as the fence, so nothing is deleted once the
        lease is lost (:class:`~persistence.errors.LeaseLost`)."""
        n = self._names
        params: dict[str, object] = {"pid": persistence_id, "to": to_sequence_nr}
        fenced: sql.Composable = sql.SQL("")
        condition: sql.Composable = sql.SQL("")
        if fence is not None:
            params.update(fence_params([fence]))
            fenced = sql.SQL("req AS ({}), {}, ").format(
                FENCE_REQUESTS, fence_cte(PlacementNames.of(n))
            )
            condition = sql.SQL(" AND EXISTS (SELECT 1 FROM fenced)")
        async with self._connect(f"delete events of {persistence_id!r}") as conn:
            cur = await conn.execute(
                sql.SQL(
                    "WITH {fenced}gone AS (DELETE FROM {journal} WHERE persistence_id = "
                    "%(pid)s AND sequence_nr <= %(to)s{condition} RETURNING ordering, tags), "
                    "untagged AS (DELETE FROM {tag} t "
                    "USING (SELECT unnest(tags) AS tag, ordering FROM gone) g "
                    "WHERE t.tag = g.tag AND t.ordering = g.ordering) "
                    "SELECT {passed}"
                ).format(
                    fenced=fenced,
                    journal=n.journal,
                    tag=n.event_tag,
                    condition=condition,
                    passed=sql.SQL(
                        "EXISTS (SELECT 1 FROM fenced)" if fence is not None else "true"
                    ),
                ),
                params,
            )
            row = await cur.fetchone()
        if row is None:
            raise UnexpectedResponse(f"deleting events of {persistence_id!r} returned no row")
        if fence is not None and not row[0]:
            raise LeaseLost(fence.key, fence.owner, fence.epoch, "delete")

    async def persistence_ids(self) -> list[str]:
        async with self._connect("list persistence ids") as conn:
            cur = await conn.execute(
                sql.SQL(
                    "SELECT persistence_id FROM {} WHERE highest > 0 ORDER BY persistence_id"
                ).format(self._names.highest)
            )
            return [str(row[0]) for row in await cur.fetchall()]
