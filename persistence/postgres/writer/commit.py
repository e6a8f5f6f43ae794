"""Writing one group-commit batch and answering its callers.

A batch is written by one statement (:mod:`.statements`) on an autocommit connection
(:mod:`.connections`): one transaction. Deadlocks and serialisation failures are retried (at
most :data:`MAX_ATTEMPTS` times). If the server refuses the statement itself (e.g. an
over-long tag), or a value cannot even be sent, the batch is written again request by
request so that only the culprit fails (:class:`~persistence.errors.AppendRefused`); the
other requests of the batch are written. If the connection or the server fails, every
caller of the batch hears it as :class:`~persistence.errors.StorageUnavailable`: the batch
may or may not have been committed, so the actor recovers from the journal.

While a large statement executes and commits, the writer builds the stored events (with
the payload copies the caller decoded from the text sent, as a replay would give them);
only their ordering and timestamp, which the commit decides, are set afterwards, before any
caller sees them. Python's share of a large batch thus overlaps the server's.

Callers whose expected sequence number was stale get
:class:`~persistence.errors.ConcurrencyConflict` with the actual highest; callers whose fence
did not pass (their lease was taken over or released, or their instance expired) get
:class:`~persistence.errors.LeaseLost`, whatever their sequence number. The winners of the
same batch are answered first, so that a failure to read the losers' highest sequence numbers
never turns committed events into reported failures.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from persistence.engine import StoredEvent
from persistence.errors import (
    AppendRefused,
    ConcurrencyConflict,
    LeaseLost,
    PersistenceError,
    StorageUnavailable,
    UnexpectedResponse,
)
from persistence.postgres.events import stamp, unstamped_events
from persistence.postgres.pool import connection
from persistence.postgres.schema import Names
from persistence.postgres.writer.connections import KeptConnections
from persistence.postgres.writer.parameters import Columns, batch_parameters
from persistence.postgres.writer.request import AppendRequest
from persistence.postgres.writer.statements import BatchStatements

OVERLAP_MIN_EVENTS = 200
"""Batches from this size prepare their stored events while the server commits. A smaller
batch prepares them afterwards: its share is small, and the task and loop turn that the
overlap needs cost about as much as they save when Python itself is the bottleneck (many
actors appending single events)."""

RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)
MAX_ATTEMPTS = 5

Outcome = tuple[int, datetime, set[str], set[str]]
"""What a batch's commit decided: the ordering base, the commit timestamp, the ids that won,
the ids whose fence did not pass."""


def refused_statement(exc: psycopg.Error) -> bool:
    """Whether the server refused the statement itself (not the connection or the server)."""
    state = exc.sqlstate
    if state is None or isinstance(exc, psycopg.InterfaceError):
        return False
    return not state.startswith(("08", "53", "57", "58", "XX"))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class BatchCommitter:
    """Writes batches of checked requests and resolves every request's future."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        names: Names,
        writer_id: str,
        target: str,
        *,
        keep_connections: int,
        connect_timeout: float,
    ) -> None:
        self._pool = pool
        self._writer_id = writer_id
        self._target = target
        self._connect_timeout = connect_timeout
        self._statements = BatchStatements(names)
        self.connections = KeptConnections(pool, keep_connections, connect_timeout)
        self.batches_written = 0
        """How many batch transactions committed (for benchmarks and tests)."""

    async def commit(self, batch: list[AppendRequest]) -> None:
        """Write ``batch``; every request's future is resolved when this returns."""
        try:
            await self._write(batch)
        except BaseException as exc:  # every caller must hear about it, whatever it was
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(self._failure(request, exc))
            if not isinstance(exc, Exception):
                raise

    def _failure(self, request: AppendRequest, exc: BaseException) -> BaseException:
        """The error a caller hears: the driver's and the pool's translated, naming the
        append and the server."""
        if isinstance(exc, PoolTimeout):
            return StorageUnavailable(
                f"{request.describe()} was not written: no connection to {self._target} "
                f"within {self._connect_timeout:g} s"
            )
        if isinstance(exc, psycopg.Error):
            return StorageUnavailable(
                f"{request.describe()} failed at {self._target}: {_one_line(exc)}; it may or "
                "may not have been written, recover from the journal"
            )
        return exc

    async def _write(self, batch: list[AppendRequest]) -> None:
        columns = Columns(batch)
        prepared: list[StoredEvent] | None = None
        overlap = len(columns.events) >= OVERLAP_MIN_EVENTS
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                if not overlap:
                    outcome = await self._transact(batch, columns)
                    break
                written = asyncio.ensure_future(self._transact(batch, columns))
                if prepared is None:
                    # While the server executes and commits the statement (one loop turn
                    # lets it go out), decode the payloads and build the stored events.
                    try:
                        await asyncio.sleep(0)
                        prepared = self._prepare(columns)
                    except BaseException:
                        written.cancel()  # as if the statement itself had been interrupted
                        raise
                outcome = await written
                break
            except RETRYABLE:
                if attempt == MAX_ATTEMPTS:
                    raise
                await asyncio.sleep(0.001 * attempt)
            except (psycopg.Error, PoolTimeout) as exc:
                if not (isinstance(exc, psycopg.Error) and refused_statement(exc)):
                    raise  # the connection or the server failed: every caller must hear it
                await self._isolate(batch, exc)
                return
            except (TypeError, ValueError) as exc:
                if isinstance(exc, PersistenceError):
                    raise
                await self._isolate(batch, exc)  # a value the driver cannot send
                return
        self.batches_written += 1
        if prepared is None:  # a small batch: prepared after the commit
            prepared = self._prepare(columns)
        await self._answer(batch, prepared, *outcome)

    async def _isolate(self, batch: list[AppendRequest], exc: Exception) -> None:
        """Something in one request broke the shared statement: write the requests one by
        one, so that only the culprit fails; a request alone is refused."""
        if len(batch) == 1:
            raise AppendRefused(
                f"PostgreSQL refused the {batch[0].describe()}: {_one_line(exc)}"
            ) from exc
        for request in batch:
            await self.commit([request])

    def _prepare(self, columns: Columns) -> list[StoredEvent]:
        """The batch's stored events but for ordering and timestamp, with the payloads'
        copies decoded from the text sent (:attr:`AppendRequest.copies`)."""
        return unstamped_events(
            columns.pids, columns.seqs, columns.events, columns.copies, self._writer_id
        )

    async def _answer(
        self,
        batch: list[AppendRequest],
        prepared: list[StoredEvent],
        base: int,
        timestamp: datetime,
        winners: set[str],
        fenced_off: set[str],
    ) -> None:
        """Stamp the winners' events and resolve their futures, then tell the losers.

        An event's ordering is ``base`` plus its position in the batch as sent: the losers'
        positions are skipped, not reused.
        """
        losers = [r for r in batch if r.persistence_id not in winners]
        if not losers:
            stamp(prepared, range(base + 1, base + 1 + len(prepared)), timestamp)
            if len(prepared) == len(batch):  # every request one event: no positions to track
                for request, event in zip(batch, prepared, strict=True):
                    if not request.future.done():
                        request.future.set_result([event])
                return
        start = 0
        for request in batch:
            end = start + len(request.events)
            if request.persistence_id in winners:
                mine = prepared[start:end]
                if losers:
                    stamp(mine, range(base + start + 1, base + end + 1), timestamp)
                if not request.future.done():
                    request.future.set_result(mine)
            start = end
        if fenced_off:
            for request in losers:
                fence = request.fence
                pid = request.persistence_id
                if pid in fenced_off and fence is not None and not request.future.done():
                    request.future.set_exception(LeaseLost(pid, fence.owner, fence.epoch, "append"))
            losers = [r for r in losers if r.persistence_id not in fenced_off]
        if losers:
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

    async def _transact(self, batch: list[AppendRequest], columns: Columns) -> Outcome:
        """Run the batch's statement; it returns only after the server committed it."""
        kind, params = batch_parameters(batch, columns, self._writer_id)
        conn = await self.connections.acquire()
        try:
            query = self._statements.query(kind, conn)
            cur = await conn.execute(query, params, prepare=True)
            row = await cur.fetchone()
        except BaseException:
            await self.connections.discard(conn)
            raise
        await self.connections.release(conn)
        if row is None:
            raise UnexpectedResponse("the group-commit statement returned no row")
        base, timestamp, winners = row[:3]
        fenced_off = set(row[3]) if len(row) > 3 else set()
        if base is None:  # every request lost: nothing was written
            return 0, datetime.now(UTC), set(), fenced_off
        return int(base), timestamp, set(winners), fenced_off

    async def _highest_of(self, persistence_ids: list[str]) -> dict[str, int]:
        async with connection(self._pool, self._connect_timeout) as conn:
            cur = await conn.execute(self._statements.highest, [persistence_ids])
            return {str(pid): int(highest) for pid, highest in await cur.fetchall()}
