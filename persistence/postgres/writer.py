"""Group commit: appends from many actors share one transaction, and one round trip.

Every :meth:`GroupCommitWriter.append` (or :meth:`~GroupCommitWriter.submit`) call queues a
request and awaits its future. While
batches are in flight (at most ``max_in_flight``), new requests accumulate; each new batch
takes its share of what is waiting (split evenly among the free slots, so that batches
overlap, and up to ``max_batch_events``). A batch holds at most one request per
persistence id, no two batches in flight share an id, and a request never overtakes an
earlier one for the same id: per-id order is kept.

One batch is one SQL statement on an autocommit connection, so one implicit transaction: the
statement returns only after COMMIT. It checks each request's expected sequence number
against the per-id ``highest`` row (``UPDATE ... WHERE highest = expected``, or an insert for a
new id) and inserts only the events of the requests that passed, so one actor's conflict
never fails another actor's events in the same batch. If the server refuses the statement
(e.g. an over-long tag), the batch is retried request by request so that only the culprit
fails.

Global ordering: an event's ordering is derived from its transaction's id and its position
in the batch (see :mod:`persistence.postgres.ordering`), so writers share no counter and no
lock beyond their own ids' ``highest`` rows: batches in flight at once (``max_in_flight``),
or from several engines, commit independently and can share a WAL flush. The positions of a
losing request are skipped, so orderings are increasing but not contiguous.

The writer keeps one connection per batch in flight between batches (leaving at least one
to the pool for reads) instead of checking one out per batch, which cost about 40 us of
Python per batch. A kept connection is checked before each batch as the pool would check
it, without a round trip: one whose backend was terminated or whose server restarted goes
back to the pool, which discards it, and the batch takes a fresh one.

A new batch is formed one event-loop turn after the first request arrives (or after a batch
finishes), so that every caller woken by the previous commit has queued its next append.

The batch's columns travel as JSON text and are split server-side with
``jsonb_array_elements``: far cheaper in Python than the driver's per-element array
dumping; the payloads are only validated, and stored as sent (a ``json`` column). Splitting
costs the server about 0.3 ms per thousand elements, so per event only the payload (and the
tags) is a column of its own; persistence id, sequence number, position, type and version
come from the requests or from *runs* of alike events, in one of three statement shapes
(see :func:`_batch_statement`): every request one event, one append of alike events, or
anything else.

While the statement executes and commits, the writer decodes the sent payloads (the
callers get their own copies, as a replay would give them) and builds the stored events;
only their ordering and timestamp, which the commit decides, are set afterwards, before
any caller sees them. Python's share of a large batch thus overlaps the server's.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from operator import attrgetter

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from persistence.engine import NewEvent, StoredEvent
from persistence.errors import ConcurrencyConflict, PersistenceError, StorageUnavailable
from persistence.postgres.events import stamp, unstamped_events
from persistence.postgres.ordering import BASE_SQL, MAX_EVENTS_PER_TRANSACTION
from persistence.postgres.pool import check_idle_connection, connection, get_connection
from persistence.postgres.schema import Names

_log = logging.getLogger(__name__)

_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

_kind = attrgetter("type", "version")

_OVERLAP_MIN_EVENTS = 200
"""Batches from this size prepare their stored events while the server commits. A smaller
batch prepares them afterwards: its share is small, and the task and loop turn that the
overlap needs cost about as much as they save when Python itself is the bottleneck (many
actors appending single events)."""

_RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)
_MAX_ATTEMPTS = 5


@dataclass(slots=True)
class AppendRequest:
    """One caller's append, waiting for its batch."""

    persistence_id: str
    expected_sequence_nr: int
    events: Sequence[NewEvent]
    payloads: str
    """The events' payloads as one JSON array text."""
    future: asyncio.Future[list[StoredEvent]] = field(repr=False)


class _Columns:
    """The per-event columns of some requests as flat lists, built once per batch: bulk list
    operations instead of a Python loop over every event."""

    __slots__ = ("events", "payloads", "pids", "seqs")

    def __init__(self, requests: list[AppendRequest]) -> None:
        self.events: list[NewEvent] = []
        self.pids: list[str] = []
        self.seqs: list[int] = []
        if len(requests) == 1:
            self.payloads = requests[0].payloads
        else:
            self.payloads = "[" + ",".join([r.payloads[1:-1] for r in requests]) + "]"
        counts = [len(r.events) for r in requests]
        if counts.count(1) == len(counts):
            # Every request one event (many actors' single events): one list comprehension
            # per column.
            self.events = [r.events[0] for r in requests]
            self.pids = [r.persistence_id for r in requests]
            self.seqs = [r.expected_sequence_nr + 1 for r in requests]
            return
        events, pids, seqs = self.events, self.pids, self.seqs
        for request in requests:
            first = request.expected_sequence_nr + 1
            n = len(request.events)
            if n == 1:  # the common case of many actors' single events
                events.append(request.events[0])
                pids.append(request.persistence_id)
                seqs.append(first)
            else:
                events += request.events
                pids += [request.persistence_id] * n
                seqs += range(first, first + n)


_RUN_COLUMNS = ("r_req", "r_skip", "r_start", "r_n", "r_type", "r_version")


def _runs(
    batch: list[AppendRequest],
) -> tuple[list[int], list[int], list[int], list[int], list[str], list[int]]:
    """The batch's runs, as the columns named in :data:`_RUN_COLUMNS`: consecutive events
    of one request alike in type and version; per run its request's number (from 1), the
    events of that request before it, its events before it in the batch, its length, its
    type and version."""
    r_req: list[int] = []
    r_skip: list[int] = []
    r_start: list[int] = []
    r_n: list[int] = []
    r_type: list[str] = []
    r_version: list[int] = []
    start = 0
    for number, request in enumerate(batch, start=1):
        skip = 0
        for (type_, version), alike in groupby(request.events, key=_kind):
            n = len(list(alike))
            r_req.append(number)
            r_skip.append(skip)
            r_start.append(start)
            r_n.append(n)
            r_type.append(type_)
            r_version.append(version)
            skip += n
            start += n
    return r_req, r_skip, r_start, r_n, r_type, r_version


SINGLES, ONE_RUN, RUNS = "singles", "one run", "runs"
"""The shapes of a batch, each with its own statement: every request one event (many actors
persisting one event each), one append of alike events (one actor persisting many), or
anything else."""


def _batch_statement(names: Names, *, tagged: bool, shape: str) -> sql.Composed:
    """The whole batch as one statement; ``tagged`` adds the events' tags and the by-tag
    index rows (a batch without tags sends and splits no tag column).

    Per event, only the payload (and the tags) travel as a column of their own: splitting
    a JSON array costs the server about 0.3 ms per thousand elements, a third of the
    insert's own cost. The events' persistence id, sequence number, position, type and
    version come from the requests (:data:`SINGLES`: one event each, so every column is
    zipped with the requests') or from *runs*, consecutive events of one request with the
    same type and version, expanded server-side (:data:`RUNS`). :data:`ONE_RUN` pairs
    every payload with the batch's only run without the join on positions that
    :data:`RUNS` needs (about a sixth of the statement for a thousand events).
    """
    if shape not in (SINGLES, ONE_RUN, RUNS):
        raise ValueError(f"unknown batch shape {shape!r}")
    tags_value = (
        """CASE WHEN jsonb_typeof({src}.tags) = 'array'
                THEN ARRAY(SELECT jsonb_array_elements_text({src}.tags))
                ELSE '{{}}'::text[] END"""
        if tagged
        else "'{{}}'::text[]"
    )
    tags_column = (
        """,
                    jsonb_array_elements(%(e_tags)s::jsonb))"""
        if tagged
        else ")"
    )
    tags_name = "tags, " if tagged else ""
    if shape == SINGLES:
        req = (
            """
    SELECT r.persistence_id, r.expected::bigint, 1::bigint AS n, r.type, r.version::int,
           r.payload, """
            + ("r.tags, " if tagged else "")
            + """r.i
    FROM ROWS FROM (jsonb_array_elements_text(%(pids)s::jsonb),
                    jsonb_array_elements_text(%(expected)s::jsonb),
                    jsonb_array_elements_text(%(r_type)s::jsonb),
                    jsonb_array_elements_text(%(r_version)s::jsonb),
                    json_array_elements(%(e_payload)s::json)"""
            + tags_column
            + """
        WITH ORDINALITY AS r(persistence_id, expected, type, version, payload, """
            + tags_name
            + "i)"
        )
        rows = (
            """
    SELECT r.persistence_id, r.expected + 1, (SELECT base FROM counter) + r.i,
           (SELECT ts FROM counter), r.type, r.version, r.payload,
           """
            + tags_value.replace("{src}", "r")
            + """, %(writer)s
    FROM req r
    WHERE r.persistence_id IN (SELECT persistence_id FROM won)"""
        )
        runs = ""
    else:
        req = """
    SELECT r.persistence_id, r.expected::bigint, r.n::bigint, r.i
    FROM ROWS FROM (jsonb_array_elements_text(%(pids)s::jsonb),
                    jsonb_array_elements_text(%(expected)s::jsonb),
                    jsonb_array_elements_text(%(counts)s::jsonb))
        WITH ORDINALITY AS r(persistence_id, expected, n, i)"""
        runs = """
run AS (
    SELECT r.persistence_id, r.expected + u.skip::bigint AS seq, u.start::bigint, u.n::bigint,
           u.type, u.version::int
    FROM ROWS FROM (jsonb_array_elements_text(%(r_req)s::jsonb),
                    jsonb_array_elements_text(%(r_skip)s::jsonb),
                    jsonb_array_elements_text(%(r_start)s::jsonb),
                    jsonb_array_elements_text(%(r_n)s::jsonb),
                    jsonb_array_elements_text(%(r_type)s::jsonb),
                    jsonb_array_elements_text(%(r_version)s::jsonb))
        AS u(req, skip, start, n, type, version)
    JOIN req r ON r.i = u.req::bigint
    WHERE r.persistence_id IN (SELECT persistence_id FROM won)
),"""
        k = "e.idx" if shape == ONE_RUN else "g.k"
        rows = (
            f"""
    SELECT u.persistence_id, u.seq + {k}, (SELECT base FROM counter) + u.start + {k},
           (SELECT ts FROM counter), u.type, u.version, e.payload,
           """
            + tags_value.replace("{src}", "e")
            + """, %(writer)s
    FROM run u"""
            + (
                """
    CROSS JOIN ROWS FROM (json_array_elements(%(e_payload)s::json)"""
                if shape == ONE_RUN
                else """
    CROSS JOIN LATERAL generate_series(1::bigint, u.n) AS g(k)
    JOIN ROWS FROM (json_array_elements(%(e_payload)s::json)"""
            )
            + tags_column
            + """
        WITH ORDINALITY AS e(payload, """
            + tags_name
            + "idx)"
            + ("" if shape == ONE_RUN else "\n        ON e.idx = u.start + g.k")
        )
    tag_cte = (
        """,
tagged AS (
    INSERT INTO {event_tag} (tag, ordering, persistence_id, sequence_nr)
    SELECT t.tag, (SELECT base FROM counter) + t.idx::bigint, t.persistence_id,
           t.sequence_nr::bigint
    FROM ROWS FROM (jsonb_array_elements_text(%(t_pid)s::jsonb),
                    jsonb_array_elements_text(%(t_seq)s::jsonb),
                    jsonb_array_elements_text(%(t_idx)s::jsonb),
                    jsonb_array_elements_text(%(t_tag)s::jsonb))
        AS t(persistence_id, sequence_nr, idx, tag)
    WHERE t.persistence_id IN (SELECT persistence_id FROM won)
)"""
        if tagged
        else ""
    )
    return sql.SQL(
        """
WITH req AS ("""
        + req
        + """
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
counter AS (
    SELECT """
        + BASE_SQL
        + """ AS base, now() AS ts WHERE EXISTS (SELECT 1 FROM won)
),"""
        + runs
        + """
jrn AS (
    INSERT INTO {journal}
        (persistence_id, sequence_nr, ordering, created_at, type, version, payload, tags, writer)"""
        + rows
        + """
)"""
        + tag_cte
        + """
SELECT (SELECT base FROM counter), (SELECT ts FROM counter),
       ARRAY(SELECT persistence_id FROM won)
"""
    ).format(
        highest=names.highest,
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
        max_in_flight: int = 2,
        connect_timeout: float = 5.0,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight}")
        self._max_in_flight = max_in_flight
        self._pool = pool
        self._names = names
        self._writer_id = writer_id
        self._target = target
        self._max_batch_events = min(max_batch_events, MAX_EVENTS_PER_TRANSACTION)
        self._connect_timeout = connect_timeout
        self._kept: list[psycopg.AsyncConnection[TupleRow]] = []
        """Connections the writer keeps between batches instead of giving them back to the
        pool: a pool checkout and return cost about 40 us per batch, as much as a tenth of
        the Python work of a batch of 50 single events."""
        self._keep = min(max_in_flight, pool.max_size - 1)
        """How many connections the writer keeps: one per batch in flight, but always
        leaving one to the pool for replays and other reads."""
        self._statements = {
            (tagged, shape): _batch_statement(names, tagged=tagged, shape=shape)
            for tagged in (False, True)
            for shape in (SINGLES, ONE_RUN, RUNS)
        }
        self._rendered: dict[tuple[bool, str], bytes] = {}
        """The statements as bytes, rendered with the first connection: psycopg renders a
        ``Composed`` query anew on every execute (tens of microseconds for this one), but
        caches the conversion of a bytes query."""
        self._highest_query = sql.SQL(
            "SELECT persistence_id, highest FROM {} WHERE persistence_id = ANY(%s)"
        ).format(names.highest)
        self._pending: deque[AppendRequest] = deque()
        self._busy: set[str] = set()
        self._flushing: set[asyncio.Task[None]] = set()
        self._closed = False
        self._start_scheduled = False
        self.batches_written = 0
        """How many batch transactions committed (for benchmarks and tests)."""

    async def append(
        self,
        persistence_id: str,
        events: Sequence[NewEvent],
        payloads: str,
        expected_sequence_nr: int,
    ) -> list[StoredEvent]:
        """Queue one append and return its stored events once its batch has committed."""
        return await self.submit(persistence_id, events, payloads, expected_sequence_nr)

    def submit(
        self,
        persistence_id: str,
        events: Sequence[NewEvent],
        payloads: str,
        expected_sequence_nr: int,
    ) -> asyncio.Future[list[StoredEvent]]:
        """Queue one append; the future resolves once its batch has committed.

        :meth:`append` without its coroutine frame: the engine awaits this future directly,
        which saves one frame per append and per wake-up on the hot path.
        """
        if self._closed:
            raise StorageUnavailable(
                f"append to {persistence_id!r} refused: the engine for {self._target} is closed"
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[StoredEvent]] = loop.create_future()
        self._pending.append(
            AppendRequest(persistence_id, expected_sequence_nr, events, payloads, future)
        )
        if not self._start_scheduled:  # _kick, inlined: this runs once per append
            self._start_scheduled = True
            loop.call_soon(self._start_batches)
        return future

    async def close(self) -> None:
        """Refuse new appends and wait until every queued one has been written or failed."""
        self._closed = True
        while self._flushing or self._pending:
            if self._flushing:
                await asyncio.wait(set(self._flushing))
            else:
                self._start_batches()
        kept, self._kept = self._kept, []
        for conn in kept:
            await self._pool.putconn(conn)

    def _kick(self) -> None:
        """Start batches one event-loop turn from now, so that callers woken together (by the
        commit of the previous batch) all join the next one."""
        if not self._start_scheduled:
            self._start_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_batches)

    def _start_batches(self) -> None:
        """Start batches while fewer than ``max_in_flight`` are running and requests wait."""
        self._start_scheduled = False
        while len(self._flushing) < self._max_in_flight and self._pending:
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
        """The next batch from what waits; its ids become busy until it is written.

        A request stays waiting if its id is busy (in flight, or already taken into this
        batch) or an earlier request of its id stays waiting (``deferred``), so that a
        request never overtakes an earlier one for the same id; or if it does not fit in
        what is left of the batch's budget.
        """
        budget = self._max_batch_events
        free = self._max_in_flight - len(self._flushing)
        if free > 1:
            # Share what waits among the free slots, so that batches overlap: one commits
            # while the next is prepared or executed.
            waiting = sum([len(r.events) for r in self._pending])
            budget = min(budget, -(-waiting // free))
        busy = self._busy
        deferred: set[str] = set()
        batch: list[AppendRequest] = []
        remaining: deque[AppendRequest] = deque()
        for request in self._pending:
            if request.future.done():  # the caller gave up before the write started
                continue
            pid = request.persistence_id
            n = len(request.events)
            if pid in busy or pid in deferred or (batch and n > budget):
                deferred.add(pid)
                remaining.append(request)
                continue
            batch.append(request)
            busy.add(pid)
            budget -= n
        self._pending = remaining
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
        columns = _Columns(batch)
        prepared: list[StoredEvent] | None = None
        overlap = len(columns.events) >= _OVERLAP_MIN_EVENTS
        for attempt in range(1, _MAX_ATTEMPTS + 1):
            try:
                if not overlap:
                    base, timestamp, winners = await self._transact(batch, columns)
                    break
                written = asyncio.ensure_future(self._transact(batch, columns))
                if prepared is None:
                    # While the server executes and commits the statement (one loop turn
                    # lets it go out), decode the payloads and build the stored events:
                    # Python's share of a large batch then overlaps the server's.
                    try:
                        await asyncio.sleep(0)
                        prepared = self._prepare(columns)
                    except BaseException:
                        written.cancel()  # as if the statement itself had been interrupted
                        raise
                base, timestamp, winners = await written
                break
            except _RETRYABLE:
                if attempt == _MAX_ATTEMPTS:
                    raise
                await asyncio.sleep(0.001 * attempt)
            except (psycopg.Error, PoolTimeout) as exc:
                if not (isinstance(exc, psycopg.Error) and _refused_statement(exc)):
                    raise  # the connection or the server failed: every caller must hear it
                if len(batch) == 1:
                    request = batch[0]
                    raise PersistenceError(
                        f"PostgreSQL refused the append of {len(request.events)} event(s) to "
                        f"{request.persistence_id!r}: {' '.join(str(exc).split())}"
                    ) from exc
                await self._one_by_one(batch)
                return
            except Exception:
                # Not the server's doing (e.g. a value the driver cannot send): isolate too.
                if len(batch) == 1:
                    raise
                await self._one_by_one(batch)
                return
        self.batches_written += 1
        if prepared is None:  # a small batch: prepared after the commit
            prepared = self._prepare(columns)
        losers = [r for r in batch if r.persistence_id not in winners]
        if len(losers) < len(batch):
            self._answer(batch, winners if losers else None, prepared, base, timestamp)
        if losers:
            # The winners are answered first: a failure to read the losers' highest sequence
            # numbers must not turn committed events into reported failures.
            actual = await self._highest_of([r.persistence_id for r in losers])
            for request in losers:
                if not request.future.done():
                    request.future.set_exception(
                        ConcurrencyConflict(
                            request.persistence_id,
                            request.expected_sequence_nr,
                            actual.get(request.persistence_id, 0),
                        )
                    )

    def _prepare(self, columns: _Columns) -> list[StoredEvent]:
        """The batch's stored events but for ordering and timestamp. The payloads are decoded
        with one ``json.loads`` of the text sent: the callers get their own copies, as a
        replay would give them."""
        return unstamped_events(
            columns.pids,
            columns.seqs,
            columns.events,
            json.loads(columns.payloads),
            self._writer_id,
        )

    def _answer(
        self,
        batch: list[AppendRequest],
        winners: set[str] | None,
        prepared: list[StoredEvent],
        base: int,
        timestamp: datetime,
    ) -> None:
        """Stamp the winners' events (``winners``; ``None``: every request won) and resolve
        their futures.

        An event's ordering is ``base`` plus its position in the batch as sent: the losers'
        positions are skipped, not reused.
        """
        if winners is None:
            stamp(prepared, range(base + 1, base + 1 + len(prepared)), timestamp)
            if len(prepared) == len(batch):  # every request one event: no positions to track
                for request, event in zip(batch, prepared, strict=True):
                    if not request.future.done():
                        request.future.set_result([event])
                return
        start = 0
        for request in batch:
            end = start + len(request.events)
            if winners is None or request.persistence_id in winners:
                mine = prepared[start:end]
                if winners is not None:
                    stamp(mine, range(base + start + 1, base + end + 1), timestamp)
                if not request.future.done():
                    request.future.set_result(mine)
            start = end

    async def _one_by_one(self, batch: list[AppendRequest]) -> None:
        """Something in one request broke the shared statement: write the requests one by
        one, so that only the culprit fails."""
        for request in batch:
            await self._flush([request])

    async def _transact(
        self, batch: list[AppendRequest], columns: _Columns
    ) -> tuple[int, datetime, set[str]]:
        # Every array goes as JSON text: one C-encoded string per column is much cheaper
        # than the driver's per-element array dumping, and the server splits it in C.
        encode = _JSON.encode
        events = columns.events
        params: dict[str, object] = {
            "pids": encode([r.persistence_id for r in batch]),
            "expected": encode([r.expected_sequence_nr for r in batch]),
            "e_payload": columns.payloads,
            "writer": self._writer_id,
        }
        if len(events) == len(batch):
            shape = SINGLES
            params["r_type"] = encode([event.type for event in events])
            params["r_version"] = encode([event.version for event in events])
        else:
            runs = _runs(batch)
            shape = ONE_RUN if len(runs[0]) == 1 else RUNS
            params["counts"] = encode([len(r.events) for r in batch])
            for name, column in zip(_RUN_COLUMNS, runs, strict=True):
                params[name] = encode(column)
        tagged = any([event.tags for event in events])
        if tagged:
            e_tags: list[list[str] | None] = []
            t_pid: list[str] = []
            t_seq: list[int] = []
            t_idx: list[int] = []
            t_tag: list[str] = []
            for idx, (pid, seq, event) in enumerate(
                zip(columns.pids, columns.seqs, events, strict=True), start=1
            ):
                if event.tags:
                    tags = sorted(event.tags)
                    e_tags.append(tags)
                    for tag in tags:
                        t_pid.append(pid)
                        t_seq.append(seq)
                        t_idx.append(idx)
                        t_tag.append(tag)
                else:
                    e_tags.append(None)
            params.update(
                e_tags=encode(e_tags),
                t_pid=encode(t_pid),
                t_seq=encode(t_seq),
                t_idx=encode(t_idx),
                t_tag=encode(t_tag),
            )
        # One statement on an autocommit connection is one transaction: execute returns
        # only after the server committed it.
        conn = await self._connection()
        try:
            kind = (tagged, shape)
            query = self._rendered.get(kind)
            if query is None:
                query = self._rendered[kind] = self._statements[kind].as_bytes(conn)
            cur = await conn.execute(query, params, prepare=True)
            row = await cur.fetchone()
        except BaseException:
            # The pool decides: a broken or busy connection is closed and replaced.
            await self._pool.putconn(conn)
            raise
        if len(self._kept) < self._keep and not self._closed:
            self._kept.append(conn)
        else:
            await self._pool.putconn(conn)
        if row is None:
            raise RuntimeError("the group-commit statement returned no row")
        base, timestamp, winners = row
        if base is None:  # every request lost: nothing was written
            return 0, datetime.now(UTC), set()
        return int(base), timestamp, set(winners)

    async def _connection(self) -> psycopg.AsyncConnection[TupleRow]:
        """A kept connection that still looks healthy, else one from the pool.

        A kept connection is checked as the pool checks its own before a hand-out (without
        a round trip unless its socket has something to say): after a server restart or a
        terminated backend, the dead connection goes back to the pool, which discards it,
        and the batch gets a fresh one.
        """
        while self._kept:
            conn = self._kept.pop()
            try:
                await check_idle_connection(conn)
            except psycopg.Error:
                await self._pool.putconn(conn)
                continue
            return conn
        conn = await get_connection(self._pool, self._connect_timeout)
        if not conn.autocommit:
            await self._pool.putconn(conn)
            raise RuntimeError("the group-commit writer needs autocommit connections")
        return conn

    async def _highest_of(self, persistence_ids: list[str]) -> dict[str, int]:
        async with connection(self._pool, self._connect_timeout) as conn:
            cur = await conn.execute(self._highest_query, [persistence_ids])
            return {str(pid): int(highest) for pid, highest in await cur.fetchall()}


