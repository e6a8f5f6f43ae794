"""The engine's tables and their versioned, idempotent migrations.

``migrate`` runs every pending migration in one transaction under a transaction-level
advisory lock keyed on the schema and table prefix, so two processes starting at once apply
each migration exactly once (the second waits, then sees nothing left to do). Identifiers are
always composed with :mod:`psycopg.sql`; nothing is interpolated as text.

Tables (``<prefix>`` before each name):

* ``journal``: one row per event, primary key ``(persistence_id, sequence_nr)``, the global
  ``ordering`` (unique by construction, see :mod:`persistence.postgres.ordering`; not indexed,
  by-tag reads go through ``event_tag``), type, version, payload, tags, writer,
  created_at. The payload is ``json``, not ``jsonb``: kept as the engine wrote it (compact,
  validated on input), so appends skip the conversion to ``jsonb`` and replays the one
  back to text (replay ~20% faster); the journal never queries inside payloads;
* ``event_tag``: ``(tag, ordering) -> (persistence_id, sequence_nr)`` for by-tag reads in
  ordering order; rows leave with their event;
* ``highest``: per persistence id the highest sequence number ever written, updated in the
  append's transaction, so it survives deletes and is the append's conflict check;
* ``snapshot``: primary key ``(persistence_id, sequence_nr)``, the ``jsonb`` payload and,
  since migration 3, ``blob``: the snapshot's optional binary part (``bytea``, ``NULL`` for
  rows saved without one, every row from before the migration included), stored
  uncompressed (see :mod:`persistence.postgres.snapshots`);
* ``durable_state``: per key revision, value, expiry (partial index on ``expires_at``);
* ``schema_version``: the migrations applied.

Ids, tags and keys use the ``"C"`` collation: their indexes compare bytes (cheaper than a
locale's rules), and ``persistence_ids()`` sorts them in code-point order, as Python does,
whatever the database's locale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from psycopg import AsyncConnection, sql

from persistence.errors import SchemaError
from persistence.postgres.placement_tables import placement_tables

TABLES = (
    "journal",
    "event_tag",
    "highest",
    "snapshot",
    "durable_state",
    "schema_version",
)


@dataclass(frozen=True, slots=True)
class Names:
    """Composable identifiers for every table of one schema + prefix."""

    schema: str
    prefix: str

    def table(self, name: str) -> sql.Composed:
        if name not in TABLES:
            raise SchemaError(f"unknown table {name!r}")
        return sql.SQL(".").join([sql.Identifier(self.schema), sql.Identifier(self.prefix + name)])

    def index(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.prefix + name)

    @property
    def journal(self) -> sql.Composed:
        return self.table("journal")

    @property
    def event_tag(self) -> sql.Composed:
        return self.table("event_tag")

    @property
    def highest(self) -> sql.Composed:
        return self.table("highest")

    @property
    def snapshot(self) -> sql.Composed:
        return self.table("snapshot")

    @property
    def durable_state(self) -> sql.Composed:
        return self.table("durable_state")

    @property
    def schema_version(self) -> sql.Composed:
        return self.table("schema_version")


def _v1(n: Names) -> list[sql.Composed]:
    return [
        sql.SQL(
            """CREATE TABLE {journal} (
                persistence_id text COLLATE "C" NOT NULL,
                sequence_nr bigint NOT NULL CHECK (sequence_nr > 0),
                ordering bigint NOT NULL,
                created_at timestamptz NOT NULL,
                type text NOT NULL,
                version integer NOT NULL,
                payload json NOT NULL,
                tags text[] NOT NULL DEFAULT '{{}}',
                writer text NOT NULL,
                PRIMARY KEY (persistence_id, sequence_nr)
            )"""
        ).format(journal=n.journal),
        sql.SQL(
            """CREATE TABLE {tag} (
                tag text COLLATE "C" NOT NULL,
                ordering bigint NOT NULL,
                persistence_id text COLLATE "C" NOT NULL,
                sequence_nr bigint NOT NULL,
                PRIMARY KEY (tag, ordering)
            )"""
        ).format(tag=n.event_tag),
        sql.SQL(
            """CREATE TABLE {highest} (
                persistence_id text COLLATE "C" PRIMARY KEY,
                highest bigint NOT NULL CHECK (highest >= 0)
            )"""
        ).format(highest=n.highest),
        sql.SQL(
            """CREATE TABLE {snapshot} (
                persistence_id text COLLATE "C" NOT NULL,
                sequence_nr bigint NOT NULL CHECK (sequence_nr >= 0),
                created_at timestamptz NOT NULL,
                payload jsonb NOT NULL,
                PRIMARY KEY (persistence_id, sequence_nr)
            )"""
        ).format(snapshot=n.snapshot),
        sql.SQL(
            """CREATE TABLE {state} (
                key text COLLATE "C" PRIMARY KEY,
                revision bigint NOT NULL CHECK (revision > 0),
                value jsonb NOT NULL,
                updated_at timestamptz NOT NULL,
                expires_at timestamptz,
                deleted boolean NOT NULL DEFAULT false
            )"""
        ).format(state=n.durable_state),
        sql.SQL(
            "CREATE INDEX {idx} ON {state} (expires_at) WHERE expires_at IS NOT NULL "
            "AND NOT deleted"
        ).format(idx=n.index("durable_state_expires_idx"), state=n.durable_state),
    ]


def _v3(n: Names) -> list[sql.Composed]:
    """The snapshot's binary part: a nullable column without a default, so PostgreSQL adds it
    without rewriting the table, and the rows written before read as having none."""
    return [
        sql.SQL("ALTER TABLE {snapshot} ADD COLUMN blob bytea").format(snapshot=n.snapshot),
        sql.SQL("ALTER TABLE {snapshot} ALTER COLUMN blob SET STORAGE EXTERNAL").format(
            snapshot=n.snapshot
        ),
    ]


Migration = Callable[[Names], list[sql.Composed]]

MIGRATIONS: tuple[tuple[int, str, Migration], ...] = (
    (1, "journal, tags, highest, snapshots, durable state", _v1),
    (2, "cluster placement: instances, leases with epochs, takeovers", placement_tables),
    (3, "snapshots: an optional binary part (blob bytea)", _v3),
)
"""``(version, description, statements)``; append new versions, never edit applied ones."""

LATEST_VERSION = MIGRATIONS[-1][0]


async def migrate(conn: AsyncConnection[object], names: Names) -> list[int]:
    """Bring the schema to :data:`LATEST_VERSION`; return the versions applied now.

    Safe to call from many processes at once and on every start.
    """
    applied: list[int] = []
    async with conn.transaction():
        lock_key = f"persistence-migrate:{names.schema}:{names.prefix}"
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [lock_key])
        await conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(names.schema))
        )
        await conn.execute(
            sql.SQL(
                """CREATE TABLE IF NOT EXISTS {versions} (
                    version integer PRIMARY KEY,
                    description text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )"""
            ).format(versions=names.schema_version)
        )
        cur = await conn.execute(
            sql.SQL("SELECT coalesce(max(version), 0) FROM {}").format(names.schema_version)
        )
        row = await cur.fetchone()
        current = int(row[0]) if row else 0  # type: ignore[index]
        if current > LATEST_VERSION:
            raise SchemaError(
                f"schema {names.schema!r} is at version {current}, newer than this code's "
                f"{LATEST_VERSION}; upgrade the application"
            )
        for version, description, statements in MIGRATIONS:
            if version <= current:
                continue
            for statement in statements(names):
                await conn.execute(statement)
            await conn.execute(
                sql.SQL("INSERT INTO {} (version, description) VALUES (%s, %s)").format(
                    names.schema_version
                ),
                [version, description],
            )
            applied.append(version)
    return applied


async def schema_version(conn: AsyncConnection[object], names: Names) -> int:
    """The highest migration applied to ``names.schema`` (0 when none)."""
    cur = await conn.execute(
        sql.SQL("SELECT coalesce(max(version), 0) FROM {}").format(names.schema_version)
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0  # type: ignore[index]
