"""Durable state in PostgreSQL: per key one ``jsonb`` value, a revision and an optional expiry.

A value is *live* when it is not deleted and not expired. Deleting or expiring keeps the
row and its revision, so revisions are never reused: writing over an expired or deleted
value continues its count.
"""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from persistence.engine import DurableState, Json, check_text, encode_json
from persistence.errors import InvalidArgument, StateRevisionConflict
from persistence.postgres.pool import Connections
from persistence.postgres.schema import Names

LIVE = "NOT s.deleted AND (s.expires_at IS NULL OR s.expires_at > clock_timestamp())"
"""The condition on a row aliased ``s`` that its value is live."""


class StateQueries:
    """Read, write, delete and purge durable state on one schema."""

    def __init__(self, connect: Connections, names: Names) -> None:
        self._connect = connect
        self._table = names.durable_state

    async def get(self, key: str) -> DurableState | None:
        async with self._connect(f"read state {key!r}") as conn:
            cur = await conn.execute(
                sql.SQL(
                    "SELECT revision, value, updated_at, expires_at FROM {} s "
                    "WHERE key = %s AND " + LIVE
                ).format(self._table),
                [key],
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return DurableState(key, int(row[0]), row[1], row[2], row[3])

    async def _live_revision(self, conn: psycopg.AsyncConnection[TupleRow], key: str) -> int:
        cur = await conn.execute(
            sql.SQL(
                "SELECT CASE WHEN " + LIVE + " THEN revision ELSE 0 END FROM {} s WHERE key = %s"
            ).format(self._table),
            [key],
        )
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def upsert(
        self, key: str, value: Json, expected_revision: int, ttl: float | None
    ) -> DurableState:
        if ttl is not None and not ttl > 0:
            raise InvalidArgument(f"ttl must be a positive number of seconds, got {ttl!r}")
        if expected_revision < 0:
            raise InvalidArgument(f"expected_revision must be >= 0, got {expected_revision}")
        check_text(key, "state key")
        text = encode_json(value, lambda: f"state {key!r}")
        expires = "clock_timestamp() + make_interval(secs => %(ttl)s)" if ttl else "NULL"
        if expected_revision == 0:
            statement = sql.SQL(
                "INSERT INTO {table} AS s (key, revision, value, updated_at, expires_at) "
                "VALUES (%(key)s, 1, %(value)s::jsonb, clock_timestamp(), " + expires + ") "
                "ON CONFLICT (key) DO UPDATE SET revision = s.revision + 1, "
                "value = excluded.value, updated_at = excluded.updated_at, "
                "expires_at = excluded.expires_at, deleted = false "
                "WHERE NOT (" + LIVE + ") "
                "RETURNING revision, value, updated_at, expires_at"
            ).format(table=self._table)
        else:
            statement = sql.SQL(
                "UPDATE {table} AS s SET revision = revision + 1, value = %(value)s::jsonb, "
                "updated_at = clock_timestamp(), expires_at = " + expires + " "
                "WHERE key = %(key)s AND revision = %(expected)s AND " + LIVE + " "
                "RETURNING revision, value, updated_at, expires_at"
            ).format(table=self._table)
        params = {"key": key, "value": text, "expected": expected_revision, "ttl": ttl}
        async with self._connect(f"write state {key!r}") as conn:
            cur = await conn.execute(statement, params)
            row = await cur.fetchone()
            if row is None:
                actual = await self._live_revision(conn, key)
                raise StateRevisionConflict(key, expected_revision, actual)
        return DurableState(key, int(row[0]), row[1], row[2], row[3])

    async def delete(self, key: str, expected_revision: int | None) -> bool:
        async with self._connect(f"delete state {key!r}") as conn, conn.transaction():
            cur = await conn.execute(
                sql.SQL(
                    "SELECT revision, " + LIVE + " FROM {} s WHERE key = %s FOR UPDATE"
                ).format(self._table),
                [key],
            )
            row = await cur.fetchone()
            live = bool(row and row[1])
            current = int(row[0]) if row and live else 0
            if expected_revision is not None and current != expected_revision:
                raise StateRevisionConflict(key, expected_revision, current)
            if row is not None and live:
                await conn.execute(
                    sql.SQL("UPDATE {} SET deleted = true WHERE key = %s").format(self._table),
                    [key],
                )
        return live

    async def purge_expired(self) -> int:
        """Mark expired values deleted and drop their payload; revisions stay, so never reused."""
        async with self._connect("purge expired state") as conn:
            cur = await conn.execute(
                sql.SQL(
                    "UPDATE {} SET deleted = true, value = 'null'::jsonb "
                    "WHERE expires_at <= clock_timestamp() AND NOT deleted"
                ).format(self._table)
            )
            return cur.rowcount
