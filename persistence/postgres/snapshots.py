"""Snapshots in PostgreSQL: one row per ``(persistence_id, sequence_nr)``, payload ``jsonb``
and an optional binary part, ``blob bytea``.

The blob column (migration 3) is stored uncompressed (``STORAGE EXTERNAL``): a large user's
blob is already a compact binary encoding, and pglz compression made its save about four
times slower for half the size, on the database's CPU. A snapshot is loaded in PostgreSQL's
binary result format, so the blob travels as its bytes (the text format would send it
hex-encoded, twice as large, and decode it again here).
"""

from __future__ import annotations

from psycopg import sql

from persistence.engine import Json, Snapshot, check_blob, check_text, encode_json
from persistence.errors import InvalidArgument
from persistence.postgres.pool import Connections
from persistence.postgres.schema import Names


class SnapshotQueries:
    """Save, load and delete snapshots on one schema, through the engine's connections."""

    def __init__(self, connect: Connections, names: Names) -> None:
        self._connect = connect
        self._table = names.snapshot

    async def save(
        self, persistence_id: str, sequence_nr: int, payload: Json, blob: bytes | None
    ) -> None:
        """Store a snapshot; one at the same ``sequence_nr`` is overwritten, blob included."""
        if sequence_nr < 0:
            raise InvalidArgument(f"snapshot sequence_nr must be >= 0, got {sequence_nr}")
        check_text(persistence_id, "persistence_id")
        what = f"snapshot of {persistence_id!r} at {sequence_nr}"
        check_blob(blob, what)
        text = encode_json(payload, what)
        async with self._connect(f"save snapshot of {persistence_id!r}") as conn:
            await conn.execute(
                sql.SQL(
                    "INSERT INTO {} (persistence_id, sequence_nr, created_at, payload, blob) "
                    "VALUES (%s, %s, now(), %s::jsonb, %b) "
                    "ON CONFLICT (persistence_id, sequence_nr) DO UPDATE SET "
                    "created_at = excluded.created_at, payload = excluded.payload, "
                    "blob = excluded.blob"
                ).format(self._table),
                [persistence_id, sequence_nr, text, blob],
            )

    async def load(self, persistence_id: str, max_sequence_nr: int) -> Snapshot | None:
        """The latest snapshot at or below ``max_sequence_nr``, or ``None``."""
        async with self._connect(f"load snapshot of {persistence_id!r}") as conn:
            cur = await conn.execute(
                sql.SQL(
                    "SELECT sequence_nr, created_at, payload, blob FROM {} "
                    "WHERE persistence_id = %s AND sequence_nr <= %s "
                    "ORDER BY sequence_nr DESC LIMIT 1"
                ).format(self._table),
                [persistence_id, max_sequence_nr],
                binary=True,
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return Snapshot(persistence_id, int(row[0]), row[1], row[2], row[3])

    async def delete(
        self, persistence_id: str, min_sequence_nr: int, max_sequence_nr: int
    ) -> None:
        """Delete the snapshots numbered ``min_sequence_nr..max_sequence_nr``, inclusive."""
        async with self._connect(f"delete snapshots of {persistence_id!r}") as conn:
            await conn.execute(
                sql.SQL(
                    "DELETE FROM {} WHERE persistence_id = %s AND sequence_nr BETWEEN %s AND %s"
                ).format(self._table),
                [persistence_id, min_sequence_nr, max_sequence_nr],
            )
