"""Recovery reads in PostgreSQL: concurrent recoveries share one query, as appends share a commit.

A recovery starts from three reads of its persistence id: the highest sequence number, the
latest snapshot at or below it, and the first page of events after that snapshot
(:meth:`~persistence.engine.Engine.recovery_start`). When many actors start at once (a
restart, a burst of first requests), :class:`RecoveryReads` gathers their requests and
answers them all with one statement, :data:`RECOVERY_QUERY`: one round trip and one pooled
connection instead of three of each per actor (the way :mod:`persistence.postgres.writer`
shares commits among appends). Further pages go through the ordinary replay, so a long
journal still streams.

Batching (:class:`~persistence.postgres.coalescing.Coalescer`): a request is queued and a
batch is formed one event-loop turn later (so that actors started together join it), or as
soon as a batch in flight returns; at most ``max_in_flight`` batches run at once, and what
arrives meanwhile waits for the next one. A batch takes requests while the events they may
return (the sum of their ``max_count``) fit in ``max_batch_events``: that, times
``max_in_flight``, bounds the rows held at once. A
snapshot rides in the batch only if it is stored in at most ``max_shared_snapshot_bytes``;
a larger one is loaded by its caller alone, at the number the batch read (and should it
have been deleted since, that caller starts again the one-by-one way).

Decoding is the caller's: the batch hands each caller its raw rows, and the caller builds
its events and decodes its snapshot in its own task, so one large batch does not hold the
event loop for the decoding of every caller at once.

Failures: if the statement fails, every caller still waiting in that batch gets the error,
translated into :mod:`persistence.errors` (a lost server or an exhausted pool:
:class:`~persistence.errors.StorageUnavailable`; a table or column the schema lacks:
:class:`~persistence.errors.SchemaError`). A caller that gives up (cancelled, timed out)
leaves the batch unharmed: its rows are dropped, the other callers get theirs.

The statement returns one row per event, ordered by request and sequence number, and one
row with no event columns for a request with no events. Each row carries its request's
head (index, highest, snapshot number and time); the snapshot's payload and blob are sent once per
request, on its first row. The guard on ``Snapshot``'s fields below fails this module's
import until a new field is read here too. To read one more snapshot column, add it to the
snapshot's lateral subquery and to the head (after :data:`_SNAPSHOT_PAYLOAD`, sent on the
first row only and, if large, counted in the size that decides whether the snapshot is
sent), then read it in :func:`_snapshot`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from psycopg import sql
from psycopg.rows import TupleRow

from persistence.engine import RecoveryStart, Snapshot, check_max_count
from persistence.errors import (
    InvalidArgument,
    StorageUnavailable,
    UnexpectedResponse,
)
from persistence.postgres.coalescing import Coalescer, batch_failure
from persistence.postgres.events import events_from_rows
from persistence.postgres.pool import Connections
from persistence.postgres.schema import Names

_SNAPSHOT_FIELDS = ("persistence_id", "sequence_nr", "timestamp", "payload", "blob")
if Snapshot.__slots__ != _SNAPSHOT_FIELDS:  # pragma: no cover - a guard for future edits
    raise ImportError(f"Snapshot fields changed to {Snapshot.__slots__}; update {__name__}")

MAX_BATCH_EVENTS = 50_000
"""The events one batch may return at most (the sum of its requests' ``max_count``)."""

MAX_IN_FLIGHT = 2
"""Batches running at once: one is read while the next gathers requests or is decoded."""

MAX_SHARED_SNAPSHOT_BYTES = 256 * 1024
"""A snapshot stored in more bytes than this is not sent in the batch: its caller loads it
alone (a round trip is little next to decoding it), so a batch holds at most this many
bytes of snapshot per request."""

RECOVERY_QUERY = """\
SELECT e.persistence_id, e.sequence_nr, e.ordering, e.created_at, e.type, e.version,
       e.payload, e.tags, e.writer,
       r.i, r.highest, s.sequence_nr, s.created_at,
       CASE WHEN (e.rn IS NULL OR e.rn = 1) AND s.size <= %(shared)s
            THEN s.payload::text END,
       CASE WHEN (e.rn IS NULL OR e.rn = 1) AND s.size <= %(shared)s
            THEN s.blob END
FROM (
    SELECT q.i, q.persistence_id, q.max_count, COALESCE(h.highest, 0) AS highest
    FROM unnest(%(ids)s::text[], %(counts)s::bigint[])
         WITH ORDINALITY AS q(persistence_id, max_count, i)
    LEFT JOIN {highest} h ON h.persistence_id = q.persistence_id
) r
LEFT JOIN LATERAL (
    SELECT sequence_nr, created_at, payload, blob,
           pg_column_size(payload) + COALESCE(pg_column_size(blob), 0) AS size
    FROM {snapshot}
    WHERE persistence_id = r.persistence_id AND sequence_nr <= r.highest
    ORDER BY sequence_nr DESC LIMIT 1
) s ON true
LEFT JOIN LATERAL (
    SELECT page.*, row_number() OVER (ORDER BY page.sequence_nr) AS rn
    FROM (
        SELECT persistence_id, sequence_nr, ordering, created_at, type, version,
               payload::text AS payload, NULLIF(tags, '{{}}') AS tags, writer
        FROM {journal}
        WHERE persistence_id = r.persistence_id
          AND sequence_nr > COALESCE(s.sequence_nr, 0) AND sequence_nr <= r.highest
        ORDER BY sequence_nr LIMIT r.max_count
    ) page
) e ON true
ORDER BY r.i, e.rn"""
"""One row per event of each request's first page (the event columns in
:func:`~persistence.postgres.events.events_from_rows` order, so its rows are decoded as a
replay page is), or one row with NULL event columns for a request without events; then the
request's head: its index in the batch (from 1), highest, snapshot number, time and, on its
first row only, payload and blob, unless those are stored in more than ``shared`` bytes. One
statement, so all three reads see the same moment."""

_INDEX, _HIGHEST, _SNAPSHOT_SEQ, _SNAPSHOT_TIME, _SNAPSHOT_PAYLOAD, _SNAPSHOT_BLOB = range(9, 15)


LoadSnapshot = Callable[[str, int], Awaitable[Snapshot | None]]
"""The engine's own snapshot load: the latest at or below a sequence number, or ``None``."""

OneByOne = Callable[[str, int], Awaitable[RecoveryStart]]
"""The start of a recovery read one call at a time (the contract's default)."""


@dataclass(frozen=True, slots=True)
class _Request:
    persistence_id: str
    max_count: int


class RecoveryReads:
    """Answers :meth:`~persistence.engine.Engine.recovery_start` for the PostgreSQL engine,
    many concurrent callers per query."""

    def __init__(
        self,
        connect: Connections,
        names: Names,
        target: str,
        load_snapshot: LoadSnapshot,
        one_by_one: OneByOne,
        *,
        max_batch_events: int = MAX_BATCH_EVENTS,
        max_in_flight: int = MAX_IN_FLIGHT,
        max_shared_snapshot_bytes: int = MAX_SHARED_SNAPSHOT_BYTES,
    ) -> None:
        if max_batch_events < 1 or max_in_flight < 1:
            raise InvalidArgument("max_batch_events and max_in_flight must be at least 1")
        self._connect = connect
        self._target = target
        self._max_batch_events = max_batch_events
        self._max_in_flight = max_in_flight
        self._load_snapshot = load_snapshot
        self._one_by_one = one_by_one
        self.max_shared_snapshot_bytes = max_shared_snapshot_bytes
        """Snapshots stored in more bytes are loaded by their callers alone."""
        self._query = sql.SQL(RECOVERY_QUERY).format(
            highest=names.highest, snapshot=names.snapshot, journal=names.journal
        )
        self._batches: Coalescer[_Request, list[TupleRow]] = Coalescer(
            self._read_batch, self._failure, what="recovery read",
            max_in_flight=max_in_flight, max_weight=max_batch_events,
            weight=_max_count,
        )
        self._closed = False

    @property
    def batches_read(self) -> int:
        """How many batch queries returned (for benchmarks and tests)."""
        return self._batches.batches

    async def read(self, persistence_id: str, max_count: int) -> RecoveryStart:
        """What recovering ``persistence_id`` starts from, read in the next batch."""
        check_max_count(max_count)
        if self._closed:
            raise StorageUnavailable(
                f"recovery read of {persistence_id!r} refused: the engine for {self._target} "
                "is closed"
            )
        rows = await self._batches.submit(_Request(persistence_id, max_count))
        start = _recovery_start(persistence_id, rows)
        seq = rows[0][_SNAPSHOT_SEQ]
        if seq is None or start.snapshot is not None:
            return start
        snapshot = await self._load_snapshot(persistence_id, int(seq))
        if snapshot is None or snapshot.sequence_nr != seq:  # deleted since: start again
            return await self._one_by_one(persistence_id, max_count)
        return RecoveryStart(persistence_id, start.highest_sequence_nr, snapshot, start.events)

    async def close(self) -> None:
        """Refuse new reads and wait until every queued one has been answered."""
        self._closed = True
        await self._batches.wait_idle()

    async def _read_batch(self, _: Hashable, batch: list[_Request]) -> list[list[TupleRow]]:
        """Run the query for ``batch``: each request's rows, in the batch's order."""
        rows = await self._fetch(batch)
        answers: list[list[TupleRow]] = []
        start = 0
        for index in range(1, len(batch) + 1):
            end = start
            while end < len(rows) and rows[end][_INDEX] == index:
                end += 1
            answers.append(rows[start:end])
            start = end
        return answers

    async def _fetch(self, batch: list[_Request]) -> list[TupleRow]:
        params = {
            "ids": [request.persistence_id for request in batch],
            "counts": [request.max_count for request in batch],
            "shared": self.max_shared_snapshot_bytes,
        }
        async with self._connect(f"recovery read of {len(batch)} persistence ids") as conn:
            cur = conn.cursor(binary=True)
            await cur.execute(self._query, params)
            return await cur.fetchall()

    def _failure(self, request: _Request, _: Hashable, exc: BaseException) -> BaseException:
        """The error one caller hears, its own instance naming its id."""
        return batch_failure(
            f"recovery read of {request.persistence_id!r} failed at {self._target}", exc
        )


def _max_count(request: _Request) -> int:
    return request.max_count


def _recovery_start(persistence_id: str, rows: list[TupleRow]) -> RecoveryStart:
    """Decode one request's rows (see :data:`RECOVERY_QUERY`)."""
    if not rows:  # the statement returns at least one row per request
        raise UnexpectedResponse(f"recovery read of {persistence_id!r} returned no row")
    head = rows[0]
    events = events_from_rows(rows) if head[1] is not None else []
    return RecoveryStart(persistence_id, int(head[_HIGHEST]), _snapshot(persistence_id, head),
                         events)


def _snapshot(persistence_id: str, head: TupleRow) -> Snapshot | None:
    """The snapshot sent in the batch; ``None`` if there is none or it was not sent."""
    if head[_SNAPSHOT_PAYLOAD] is None:
        return None
    payload = json.loads(head[_SNAPSHOT_PAYLOAD])
    blob = head[_SNAPSHOT_BLOB]
    return Snapshot(persistence_id, int(head[_SNAPSHOT_SEQ]), head[_SNAPSHOT_TIME], payload,
                    None if blob is None else bytes(blob))
