"""The PostgreSQL engine: the engine contract on psycopg 3 with an async connection pool.

Appends go through the group-commit writer (:mod:`persistence.postgres.writer`); every other
call takes a pooled connection for one statement or one short transaction. Replay and
by-tag reads stream in keyset pages, each its own short query (the next page is fetched
while the caller handles this one), so memory stays flat at two pages and no connection is
held while the caller processes events. Connection failures surface as
:class:`~persistence.errors.StorageUnavailable` naming host, port and database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from persistence.embedded import EmbeddedPostgres
from persistence.engine import (
    MAX_SEQUENCE_NR,
    DurableState,
    Engine,
    Json,
    NewEvent,
    Snapshot,
    StoredEvent,
    check_append,
    check_range,
    check_text,
    encode_json,
)
from persistence.errors import SerializationError, StateRevisionConflict, StorageUnavailable
from persistence.postgres.config import PostgresConfig, connection_error
from persistence.postgres.events import events_from_rows
from persistence.postgres.fastpath import plain_append, plain_payloads
from persistence.postgres.ordering import (
    HORIZON_SQL,
    HORIZON_WAIT,
    MAX_EVENTS_PER_TRANSACTION,
)
from persistence.postgres.pool import connection, make_pool
from persistence.postgres.schema import Names, migrate
from persistence.postgres.writer import GroupCommitWriter

_log = logging.getLogger(__name__)

_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)

_EVENT_COLUMN_NAMES = (
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
def _event_columns(table: str | None = None) -> sql.Composable:
    """The event columns in :func:`~persistence.postgres.events.events_from_rows` order: the
    payload as JSON text, and empty tags as NULL (no array to decode for most events)."""

    def column(name: str) -> sql.Composable:
        ident = sql.Identifier(*filter(None, (table, name)))
        if name == "payload":
            return sql.SQL("{}::text").format(ident)
        if name == "tags":
            return sql.SQL("NULLIF({}, '{{}}')").format(ident)
        return ident

    return sql.SQL(", ").join(column(c) for c in _EVENT_COLUMN_NAMES)


def _describe_payload(persistence_id: str, number: int, event: NewEvent) -> Callable[[], str]:
    return lambda: f"payload of event #{number} ({event.type}) for {persistence_id!r}"


async def _snapshot_bounds(conn: psycopg.AsyncConnection[TupleRow]) -> tuple[int, int]:
    """``xmin`` and ``xmax`` of a fresh snapshot: every transaction below ``xmin`` has
    finished, and every transaction that gets an id from now on gets one of at least ``xmax``."""
    cur = await conn.execute(
        "SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint "
        "FROM pg_current_snapshot() AS s"
    )
    row = await cur.fetchone()
    if row is None:
        raise RuntimeError("pg_current_snapshot() returned no row")
    return int(row[0]), int(row[1])


class PostgresEngine(Engine):
    """Journal, snapshots and durable state in one PostgreSQL schema.

    ``PostgresEngine(url)`` or ``PostgresEngine(config=PostgresConfig(url, schema=...))``;
    keyword arguments other than ``config`` are passed to :class:`PostgresConfig`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        config: PostgresConfig | None = None,
        writer_id: str | None = None,
        **settings: Any,
    ) -> None:
        if config is None:
            if url is None:
                raise ValueError("PostgresEngine needs a url or a config")
            config = PostgresConfig(url, **settings)
        elif url is not None or settings:
            raise ValueError("pass either a config or a url with settings, not both")
        self.config = config
        self.writer_id = writer_id or uuid.uuid4().hex
        self.names = Names(config.schema, config.table_prefix)
        self._target = config.target
        self._pool: AsyncConnectionPool | None = None
        self._writer: GroupCommitWriter | None = None
        self.embedded: EmbeddedPostgres | None = None
        """The embedded server this engine runs on, if :func:`~persistence.open_engine` started
        one; released when the engine closes."""
        n = self.names
        self._sql_replay = sql.SQL(
            "SELECT {cols} FROM {journal} WHERE persistence_id = %s AND sequence_nr >= %s "
            "AND sequence_nr <= %s ORDER BY sequence_nr LIMIT %s"
        ).format(cols=_event_columns(), journal=n.journal)
        self._sql_by_tag = sql.SQL(
            "SELECT {cols} FROM {tag} t JOIN {journal} j "
            "ON j.persistence_id = t.persistence_id AND j.sequence_nr = t.sequence_nr "
            "WHERE t.tag = %s AND t.ordering > %s AND t.ordering < " + HORIZON_SQL + " "
            "ORDER BY t.ordering LIMIT %s"
        ).format(
            cols=_event_columns("j"),
            tag=n.event_tag,
            journal=n.journal,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def target(self) -> str:
        """``host:port/database`` of the server this engine talks to."""
        return self._target

    @property
    def application_name(self) -> str:
        """The ``application_name`` of this engine's connections (see ``pg_stat_activity``)."""
        return f"persistence-{self.writer_id[:12]}"

    async def start(self) -> None:
        if self._pool is not None:
            return
        cfg = self.config
        try:
            # One direct connection first: it gives the real reason (refused, bad password,
            # missing database) where a pool would only time out.
            conn = await psycopg.AsyncConnection.connect(
                cfg.url, autocommit=True, connect_timeout=max(1, round(cfg.connect_timeout))
            )
        except psycopg.Error as exc:
            raise connection_error(cfg.url, "cannot connect to", exc) from None
        try:
            async with conn:
                await migrate(conn, self.names)
        except _CONNECTION_ERRORS as exc:
            raise connection_error(cfg.url, "lost connection to", exc) from None
        pool = make_pool(cfg, self.application_name)
        try:
            await pool.open(wait=True, timeout=cfg.connect_timeout)
        except PoolTimeout as exc:
            await pool.close()
            raise connection_error(cfg.url, "cannot open a connection pool to", exc) from None
        self._pool = pool
        self._writer = GroupCommitWriter(
            pool,
            self.names,
            self.writer_id,
            self._target,
            max_batch_events=cfg.max_batch_events,
            max_in_flight=cfg.max_batches_in_flight,
            connect_timeout=cfg.connect_timeout,
        )

    async def close(self) -> None:
        writer, pool = self._writer, self._pool
        self._writer = None
        if writer is not None:
            await writer.close()
        self._pool = None
        if pool is not None:
            await pool.close()
        embedded, self.embedded = self.embedded, None
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)

    @property
    def writer(self) -> GroupCommitWriter:
        """The group-commit writer (for statistics); fails if the engine is not started."""
        if self._writer is None:
            raise StorageUnavailable(f"the engine for {self._target} is not started")
        return self._writer

    @asynccontextmanager
    async def _connection(self, action: str) -> AsyncIterator[psycopg.AsyncConnection[TupleRow]]:
        if self._pool is None:
            raise StorageUnavailable(f"{action}: the engine for {self._target} is not started")
        try:
            async with connection(self._pool, self.config.connect_timeout) as conn:
                yield conn
        except _CONNECTION_ERRORS as exc:
            raise connection_error(self.config.url, f"{action}: cannot reach", exc) from None

    async def drop_schema(self) -> None:
        """Drop this engine's whole schema (tests and tools only), then close the engine."""
        async with self._connection("drop schema") as conn:
            await conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(self.names.schema)
                )
            )
        await self.close()

    # -- journal -----------------------------------------------------------------------------

    async def append(
        self, persistence_id: str, events: Sequence[NewEvent], expected_sequence_nr: int
    ) -> list[StoredEvent]:
        if not events:
            return []
        if not plain_append(persistence_id, events, expected_sequence_nr):
            check_append(persistence_id, events, expected_sequence_nr)
        if len(events) > MAX_EVENTS_PER_TRANSACTION:
            raise ValueError(
                f"an append to {persistence_id!r} holds {len(events)} events; PostgreSQL "
                f"takes at most {MAX_EVENTS_PER_TRANSACTION} in one append"
            )
        payloads = plain_payloads([event.payload for event in events])
        if payloads is not None:
            return await self.writer.submit(
                persistence_id, events, payloads, expected_sequence_nr
            )
        try:
            # One encoder call for the whole batch; only a failure looks at events one by one.
            payloads = encode_json(
                [event.payload for event in events],
                lambda: f"payloads of {len(events)} events for {persistence_id!r}",
            )
        except SerializationError:
            for i, event in enumerate(events, start=1):
                encode_json(event.payload, _describe_payload(persistence_id, i, event))
            raise
        return await self.writer.submit(persistence_id, events, payloads, expected_sequence_nr)

    async def replay(
        self,
        persistence_id: str,
        from_sequence_nr: int = 1,
        to_sequence_nr: int = MAX_SEQUENCE_NR,
        max_count: int | None = None,
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
        page_size = self.config.replay_page_size
        remaining = max_count

        async def fetch(key: int, limit: int) -> list[TupleRow]:
            async with self._connection(action) as conn:
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
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending

    async def highest_sequence_nr(self, persistence_id: str) -> int:
        async with self._connection(f"highest sequence_nr of {persistence_id!r}") as conn:
            cur = await conn.execute(
                sql.SQL("SELECT highest FROM {} WHERE persistence_id = %s").format(
                    self.names.highest
                ),
                [persistence_id],
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def delete_events_to(self, persistence_id: str, to_sequence_nr: int) -> None:
        n = self.names
        async with self._connection(f"delete events of {persistence_id!r}") as conn:
            await conn.execute(
                sql.SQL(
                    "WITH gone AS (DELETE FROM {journal} WHERE persistence_id = %s "
                    "AND sequence_nr <= %s RETURNING ordering, tags) "
                    "DELETE FROM {tag} t USING (SELECT unnest(tags) AS tag, ordering FROM gone) g "
                    "WHERE t.tag = g.tag AND t.ordering = g.ordering"
                ).format(journal=n.journal, tag=n.event_tag),
                [persistence_id, to_sequence_nr],
            )

    async def events_by_tag(
        self, tag: str, after_ordering: int = 0, max_count: int | None = None
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

    async def _await_horizon(self, action: str) -> None:
        """Wait (at most :data:`HORIZON_WAIT` seconds) until every transaction running now
        has finished, so that a by-tag read returns what was committed before it started.

        Usually one round trip: nothing older is running, or it commits within milliseconds.
        After the wait, events of transactions still open are held back, never skipped.
        """
        deadline = time.monotonic() + HORIZON_WAIT
        pause = 0.001
        async with self._connection(action) as conn:
            horizon, target = await _snapshot_bounds(conn)
            while horizon < target and time.monotonic() < deadline:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.05)
                horizon, _ = await _snapshot_bounds(conn)

    async def persistence_ids(self) -> list[str]:
        async with self._connection("list persistence ids") as conn:
            cur = await conn.execute(
                sql.SQL(
                    "SELECT persistence_id FROM {} WHERE highest > 0 ORDER BY persistence_id"
                ).format(self.names.highest)
            )
            return [str(row[0]) for row in await cur.fetchall()]

    # -- snapshots ---------------------------------------------------------------------------

    async def save_snapshot(self, persistence_id: str, sequence_nr: int, payload: Json) -> None:
        if sequence_nr < 0:
            raise ValueError(f"snapshot sequence_nr must be >= 0, got {sequence_nr}")
        check_text(persistence_id, "persistence_id")
        text = encode_json(payload, lambda: f"snapshot of {persistence_id!r} at {sequence_nr}")
        async with self._connection(f"save snapshot of {persistence_id!r}") as conn:
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {} (persistence_id, sequence_nr, created_at, payload) "
                    "VALUES (%s, %s, now(), %s::jsonb) ON CONFLICT (persistence_id, sequence_nr) "
                    "DO UPDATE SET created_at = excluded.created_at, payload = excluded.payload"
                ).format(self.names.snapshot),
                [persistence_id, sequence_nr, text],
            )

    async def load_snapshot(
        self, persistence_id: str, max_sequence_nr: int = MAX_SEQUENCE_NR
    ) -> Snapshot | None:
        async with self._connection(f"load snapshot of {persistence_id!r}") as conn:
            cur = await conn.execute(
                sql.SQL(
                    "SELECT sequence_nr, created_at, payload FROM {} WHERE persistence_id = %s "
                    "AND sequence_nr <= %s ORDER BY sequence_nr DESC LIMIT 1"
                ).format(self.names.snapshot),
                [persistence_id, max_sequence_nr],
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return Snapshot(persistence_id, int(row[0]), row[1], row[2])

    async def delete_snapshots(
        self, persistence_id: str, min_sequence_nr: int = 0, max_sequence_nr: int = MAX_SEQUENCE_NR
    ) -> None:
        async with self._connection(f"delete snapshots of {persistence_id!r}") as conn:
            await conn.execute(
                sql.SQL(
                    "DELETE FROM {} WHERE persistence_id = %s AND sequence_nr BETWEEN %s AND %s"
                ).format(self.names.snapshot),
                [persistence_id, min_sequence_nr, max_sequence_nr],
            )

    # -- durable state -----------------------------------------------------------------------

    _LIVE = "NOT s.deleted AND (s.expires_at IS NULL OR s.expires_at > clock_timestamp())"

    async def get_state(self, key: str) -> DurableState | None:
        async with self._connection(f"read state {key!r}") as conn:
            cur = await conn.execute(
                sql.SQL(
                    "SELECT revision, value, updated_at, expires_at FROM {} s "
                    "WHERE key = %s AND " + self._LIVE
                ).format(self.names.durable_state),
                [key],
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return DurableState(key, int(row[0]), row[1], row[2], row[3])

    async def _live_revision(self, conn: psycopg.AsyncConnection[TupleRow], key: str) -> int:
        cur = await conn.execute(
            sql.SQL(
                "SELECT CASE WHEN " + self._LIVE + " THEN revision ELSE 0 END FROM {} s "
                "WHERE key = %s"
            ).format(self.names.durable_state),
            [key],
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def upsert_state(
        self, key: str, value: Json, expected_revision: int, ttl: float | None = None
    ) -> DurableState:
        if ttl is not None and not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
        if expected_revision < 0:
            raise ValueError(f"expected_revision must be >= 0, got {expected_revision}")
        check_text(key, "state key")
        text = encode_json(value, lambda: f"state {key!r}")
        table = self.names.durable_state
        expires = "clock_timestamp() + make_interval(secs => %(ttl)s)" if ttl else "NULL"
        if expected_revision == 0:
            statement = sql.SQL(
                "INSERT INTO {table} AS s (key, revision, value, updated_at, expires_at) "
                "VALUES (%(key)s, 1, %(value)s::jsonb, clock_timestamp(), " + expires + ") "
                "ON CONFLICT (key) DO UPDATE SET revision = s.revision + 1, "
                "value = excluded.value, updated_at = excluded.updated_at, "
                "expires_at = excluded.expires_at, deleted = false "
                "WHERE NOT (" + self._LIVE + ") "
                "RETURNING revision, value, updated_at, expires_at"
            ).format(table=table)
        else:
            statement = sql.SQL(
                "UPDATE {table} AS s SET revision = revision + 1, value = %(value)s::jsonb, "
                "updated_at = clock_timestamp(), expires_at = " + expires + " "
                "WHERE key = %(key)s AND revision = %(expected)s AND " + self._LIVE + " "
                "RETURNING revision, value, updated_at, expires_at"
            ).format(table=table)
        params = {"key": key, "value": text, "expected": expected_revision, "ttl": ttl}
        async with self._connection(f"write state {key!r}") as conn:
            cur = await conn.execute(statement, params)
            row = await cur.fetchone()
            if row is None:
                actual = await self._live_revision(conn, key)
                raise StateRevisionConflict(key, expected_revision, actual)
        return DurableState(key, int(row[0]), row[1], row[2], row[3])

    async def delete_state(self, key: str, expected_revision: int | None = None) -> bool:
        table = self.names.durable_state
        async with self._connection(f"delete state {key!r}") as conn, conn.transaction():
            cur = await conn.execute(
                sql.SQL(
                    "SELECT revision, " + self._LIVE + " FROM {} s WHERE key = %s FOR UPDATE"
                ).format(table),
                [key],
            )
            row = await cur.fetchone()
            live = bool(row and row[1])
            current = int(row[0]) if row and live else 0
            if expected_revision is not None and current != expected_revision:
                raise StateRevisionConflict(key, expected_revision, current)
            if row is not None and live:
                await conn.execute(
                    sql.SQL("UPDATE {} SET deleted = true WHERE key = %s").format(table), [key]
                )
        return live

    async def purge_expired_state(self) -> int:
        """Mark expired values deleted and drop their payload; revisions stay, so never reused."""
        async with self._connection("purge expired state") as conn:
            cur = await conn.execute(
                sql.SQL(
                    "UPDATE {} SET deleted = true, value = 'null'::jsonb "
                    "WHERE expires_at <= clock_timestamp() AND NOT deleted"
                ).format(self.names.durable_state)
            )
            return cur.rowcount

