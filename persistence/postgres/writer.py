"""Group commit: appends from many actors share one transaction, and one round trip.

Every :meth:`GroupCommitWriter.append` call queues a request and awaits its future. While a
batch transaction is in flight, new requests accumulate; when it finishes the next batch
takes everything that is waiting (up to ``max_batch_events``). A batch holds at most one
request per persistence id, and a request never overtakes an earlier one for the same id,
so per-id order is kept; callers are told the outcome only after COMMIT returned.

One batch is one SQL statement (plus COMMIT, pipelined): it checks each request's expected
sequence number against the per-id ``highest`` row (``UPDATE ... WHERE highest = expected``,
or an insert for a new id) and inserts only the events of the requests that passed. So one
actor's conflict never fails another actor's events in the same batch.

Global ordering and the gap problem: ``ordering`` is not taken from a sequence (whose values
become visible out of commit order, so a by-tag reader trusting them skips late commits).
Each batch instead adds its event count to a single counter row in the same transaction, as
late in the transaction as possible. The row lock serialises writers from that point until
COMMIT, and the lock is released only after the commit became visible, so a transaction that
reads the counter after us also commits after us: orderings become visible strictly in
commit order, a rolled-back batch gives its numbers back, and readers need no gap detection.
The price is that writers of one database commit one after another; group commit makes each
of those commits carry many events.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from persistence.engine import NewEvent, StoredEvent
from persistence.errors import ConcurrencyConflict, PersistenceError, StorageUnavailable
from persistence.postgres.schema import Names

_log = logging.getLogger(__name__)

_RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)
_MAX_ATTEMPTS = 5


@dataclass(slots=True)
class AppendRequest:
    """One caller's append, waiting for its batch."""

    persistence_id: str
    expected_sequence_nr: int
    events: Sequence[NewEvent]
    payloads: list[str]
    future: asyncio.Future[list[StoredEvent]] = field(repr=False)


def _batch_statement(names: Names) -> sql.Composed:
    return sql.SQL(
        """
WITH req AS (
    SELECT * FROM unnest(%(pids)s::text[], %(expected)s::bigint[], %(counts)s::bigint[])
        AS r(persistence_id, expected, n)
),
upd AS (
    UPDATE {highest} AS h SET highest = r.expected + r.n
    FROM req r
    WHERE r.expected > 0 AND h.persistence_id = r.persistence_id AND h.highest = r.expected
    RETURNING h.persistence_id
),
ins AS (
    INSERT INTO {highest} AS h (persistence_id, highest)
    SELECT r.persistence_id, r.n FROM req r WHERE r.expected = 0
    ON CONFLICT (persistence_id) DO UPDATE SET highest = excluded.highest WHERE h.highest = 0
    RETURNING h.persistence_id
),
won AS (SELECT persistence_id FROM upd UNION ALL SELECT persistence_id FROM ins),
ev AS (
    SELECT e.*, row_number() OVER (ORDER BY e.idx) AS rank
    FROM unnest(%(e_pid)s::text[], %(e_seq)s::bigint[], %(e_type)s::text[],
                %(e_version)s::int[], %(e_payload)s::text[], %(e_tags)s::text[])
        WITH ORDINALITY AS e(persistence_id, sequence_nr, type, version, payload, tags, idx)
    WHERE e.persistence_id IN (SELECT persistence_id FROM won)
),
counter AS (
    UPDATE {ordering} SET value = value + (SELECT count(*) FROM ev)
    RETURNING value - (SELECT count(*) FROM ev) AS base, now() AS ts
),
jrn AS (
    INSERT INTO {journal}
        (persistence_id, sequence_nr, ordering, created_at, type, version, payload, tags, writer)
    SELECT ev.persistence_id, ev.sequence_nr, c.base + ev.rank, c.ts, ev.type, ev.version,
           ev.payload::jsonb,
           CASE WHEN ev.tags IS NULL THEN '{{}}'::text[]
                ELSE ARRAY(SELECT jsonb_array_elements_text(ev.tags::jsonb)) END,
           %(writer)s
    FROM ev CROSS JOIN counter c
    RETURNING ordering, tags
),
tagged AS (
    INSERT INTO {event_tag} (tag, ordering)
    SELECT unnest(jrn.tags), jrn.ordering FROM jrn WHERE cardinality(jrn.tags) > 0
)
SELECT c.base, c.ts, ARRAY(SELECT persistence_id FROM won) FROM counter c
"""
    ).format(
        highest=names.highest,
        ordering=names.ordering,
        journal=names.journal,
        event_tag=names.event_tag,
    )


def _refused_statement(exc: psycopg.Error) -> bool:
    """Whether the server refused the statement itself (not the connection or the server)."""
    state = exc.sqlstate
    if state is None or isinstance(exc, psycopg.InterfaceError):
        return False
    return not state.startswith(("08", "53", "57", "58", "XX"))


class GroupCommitWriter:
    """Queues appends and writes them in shared transactions through ``pool``."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        names: Names,
        writer_id: str,
        target: str,
        *,
        max_batch_events: int = 10_000,
        connect_timeout: float = 5.0,
    ) -> None:
        self._pool = pool
        self._names = names
        self._writer_id = writer_id
        self._target = target
        self._max_batch_events = max_batch_events
        self._connect_timeout = connect_timeout
        self._statement = _batch_statement(names)
        self._highest_query = sql.SQL(
            "SELECT persistence_id, highest FROM {} WHERE persistence_id = ANY(%s)"
        ).format(names.highest)
        self._pending: deque[AppendRequest] = deque()
        self._busy: set[str] = set()
        self._flushing: set[asyncio.Task[None]] = set()
        self._closed = False
        self.batches_written = 0
        """How many batch transactions committed (for benchmarks and tests)."""

    async def append(
        self,
        persistence_id: str,
        events: Sequence[NewEvent],
        payloads: list[str],
        expected_sequence_nr: int,
    ) -> list[StoredEvent]:
        """Queue one append and return its stored events once its batch has committed."""
        if self._closed:
            raise StorageUnavailable(
                f"append to {persistence_id!r} refused: the engine for {self._target} is closed"
            )
        future: asyncio.Future[list[StoredEvent]] = asyncio.get_running_loop().create_future()
        self._pending.append(
            AppendRequest(persistence_id, expected_sequence_nr, events, payloads, future)
        )
        self._kick()
        return await future

    async def close(self) -> None:
        """Refuse new appends and wait until every queued one has been written or failed."""
        self._closed = True
        while self._flushing or self._pending:
            if self._flushing:
                await asyncio.wait(set(self._flushing))
            else:
                self._kick()

    def _kick(self) -> None:
        """Start a batch if none is in flight and requests are waiting."""
        if self._flushing or not self._pending:
            return
        batch = self._take_batch()
        if not batch:
            return
        task = asyncio.get_running_loop().create_task(self._flush(batch))
        self._flushing.add(task)
        task.add_done_callback(self._flushed)

    def _flushed(self, task: asyncio.Task[None]) -> None:
        self._flushing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("group-commit flush crashed", exc_info=task.exception())
        self._kick()

    def _take_batch(self) -> list[AppendRequest]:
        batch: list[AppendRequest] = []
        blocked = set(self._busy)
        remaining: deque[AppendRequest] = deque()
        budget = self._max_batch_events
        while self._pending:
            request = self._pending.popleft()
            if request.future.done():  # the caller gave up before the write started
                continue
            pid = request.persistence_id
            if pid in blocked or (batch and len(request.events) > budget):
                blocked.add(pid)
                remaining.append(request)
                continue
            batch.append(request)
            blocked.add(pid)
            budget -= len(request.events)
        self._pending = remaining
        self._busy.update(r.persistence_id for r in batch)
        return batch

    async def _flush(self, batch: list[AppendRequest]) -> None:
        try:
            await self._write(batch)
        except BaseException as exc:  # every caller must hear about it, whatever it was
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(self._describe_failure(request, exc))
            if not isinstance(exc, Exception):
                raise
        finally:
            for request in batch:
                self._busy.discard(request.persistence_id)

    def _describe_failure(self, request: AppendRequest, exc: BaseException) -> BaseException:
        what = (
            f"append of {len(request.events)} event(s) to {request.persistence_id!r} at "
            f"sequence_nr {request.expected_sequence_nr + 1}"
        )
        if isinstance(exc, PoolTimeout):
            return StorageUnavailable(
                f"{what} was not written: no connection to {self._target} within "
                f"{self._connect_timeout:g} s"
            )
        if isinstance(exc, psycopg.Error):
            reason = " ".join(str(exc).split()) or type(exc).__name__
            return StorageUnavailable(
                f"{what} failed at {self._target}: {reason}; it may or may not have been "
                "written, recover from the journal"
            )
        return exc

    async def _write(self, batch: list[AppendRequest]) -> None:
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                base, timestamp, winners = await self._transact(batch)
                break
            except _RETRYABLE:
                if attempt == _MAX_ATTEMPTS:
                    raise
                await asyncio.sleep(0.001 * attempt)
            except psycopg.Error as exc:
                if not _refused_statement(exc):
                    raise
                if len(batch) == 1:
                    request = batch[0]
                    raise PersistenceError(
                        f"PostgreSQL refused the append of {len(request.events)} event(s) to "
                        f"{request.persistence_id!r}: {' '.join(str(exc).split())}"
                    ) from exc
                # Something in one request broke the shared statement: write them one by
                # one so that only the culprit fails.
                for request in batch:
                    await self._flush([request])
                return
        self.batches_written += 1
        losers = [r for r in batch if r.persistence_id not in winners]
        actual = await self._highest_of([r.persistence_id for r in losers]) if losers else {}
        rank = 0
        for request in batch:
            if request.persistence_id not in winners:
                if not request.future.done():
                    request.future.set_exception(
                        ConcurrencyConflict(
                            request.persistence_id,
                            request.expected_sequence_nr,
                            actual.get(request.persistence_id, 0),
                        )
                    )
                continue
            stored = []
            for offset, (event, payload) in enumerate(
                zip(request.events, request.payloads, strict=True), start=1
            ):
                rank += 1
                stored.append(
                    StoredEvent(
                        request.persistence_id,
                        request.expected_sequence_nr + offset,
                        base + rank,
                        timestamp,
                        event.type,
                        event.version,
                        json.loads(payload),
                        frozenset(event.tags),
                        self._writer_id,
                    )
                )
            if not request.future.done():
                request.future.set_result(stored)

    async def _transact(self, batch: list[AppendRequest]) -> tuple[int, datetime, set[str]]:
        e_pid: list[str] = []
        e_seq: list[int] = []
        e_type: list[str] = []
        e_version: list[int] = []
        e_tags: list[str | None] = []
        e_payload: list[str] = []
        for request in batch:
            for offset, event in enumerate(request.events, start=1):
                e_pid.append(request.persistence_id)
                e_seq.append(request.expected_sequence_nr + offset)
                e_type.append(event.type)
                e_version.append(event.version)
                e_tags.append(json.dumps(sorted(event.tags)) if event.tags else None)
            e_payload.extend(request.payloads)
        params = {
            "pids": [r.persistence_id for r in batch],
            "expected": [r.expected_sequence_nr for r in batch],
            "counts": [len(r.events) for r in batch],
            "e_pid": e_pid,
            "e_seq": e_seq,
            "e_type": e_type,
            "e_version": e_version,
            "e_payload": e_payload,
            "e_tags": e_tags,
            "writer": self._writer_id,
        }
        pool = self._pool
        async with pool.connection(timeout=self._connect_timeout) as conn, conn.pipeline():
            async with conn.transaction():
                cur = await conn.execute(self._statement, params, prepare=True)
            row = await cur.fetchone()
        if row is None:
            raise RuntimeError("the group-commit statement returned no row")
        base, timestamp, winners = row
        return int(base), timestamp, set(winners)

    async def _highest_of(self, persistence_ids: list[str]) -> dict[str, int]:
        async with self._pool.connection(timeout=self._connect_timeout) as conn:
            cur = await conn.execute(self._highest_query, [persistence_ids])
            return {str(pid): int(highest) for pid, highest in await cur.fetchall()}


