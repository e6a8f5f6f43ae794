"""Group commit: appends from many actors share one transaction, and one round trip.

Every :meth:`GroupCommitWriter.submit` queues a request and returns its future. While
batches are in flight (at most ``max_in_flight``), new requests accumulate; each new batch
takes its share of what is waiting (split evenly among the free slots, so that batches
overlap, and up to ``max_batch_events``). Batches in flight at once, or from several
engines, commit independently and can share a WAL flush.

Per-id order: a batch holds at most one request per persistence id, no two batches in
flight share an id, and a request never overtakes an earlier one for the same id.

A new batch is formed one event-loop turn after the first request arrives (or after a batch
finishes), so that every caller woken by the previous commit has queued its next append.
How one batch is written, retried and isolated is :mod:`.commit`'s job.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence

from psycopg_pool import AsyncConnectionPool

from persistence.engine import Json, NewEvent, StoredEvent
from persistence.errors import InvalidArgument, StorageUnavailable
from persistence.leases import Lease
from persistence.postgres.ordering import MAX_EVENTS_PER_TRANSACTION
from persistence.postgres.schema import Names
from persistence.postgres.writer.commit import BatchCommitter
from persistence.postgres.writer.request import AppendRequest

_log = logging.getLogger(__name__)


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
            raise InvalidArgument(f"max_in_flight must be at least 1, got {max_in_flight}")
        self._max_in_flight = max_in_flight
        self._target = target
        self._max_batch_events = min(max_batch_events, MAX_EVENTS_PER_TRANSACTION)
        self._committer = BatchCommitter(
            pool,
            names,
            writer_id,
            target,
            keep_connections=max_in_flight,
            connect_timeout=connect_timeout,
        )
        self._pending: deque[AppendRequest] = deque()
        self._busy: set[str] = set()
        self._flushing: set[asyncio.Task[None]] = set()
        self._closed = False
        self._start_scheduled = False

    @property
    def batches_written(self) -> int:
        """How many batch transactions committed (for benchmarks and tests)."""
        return self._committer.batches_written

    def submit(
        self,
        persistence_id: str,
        events: Sequence[NewEvent],
        payloads: tuple[str, list[Json]],
        expected_sequence_nr: int,
        fence: Lease | None = None,
    ) -> asyncio.Future[list[StoredEvent]]:
        """Queue one checked append (``payloads``: what
        :func:`~persistence.engine.encode_payloads` made of its events); the future resolves
        once its batch has committed.

        With ``fence`` the append lands only while that lease is held; otherwise its future
        fails with :class:`~persistence.errors.LeaseLost` and the rest of its batch commits.

        A future, not a coroutine: the engine awaits it directly, which saves one frame per
        append and per wake-up on the hot path.
        """
        if self._closed:
            raise StorageUnavailable(
                f"append to {persistence_id!r} refused: the engine for {self._target} is closed"
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[StoredEvent]] = loop.create_future()
        self._pending.append(
            AppendRequest(persistence_id, expected_sequence_nr, events, *payloads, future, fence)
        )
        self._kick()
        return future

    async def close(self) -> None:
        """Refuse new appends and wait until every queued one has been written or failed."""
        self._closed = True
        while self._flushing or self._pending:
            if self._flushing:
                await asyncio.wait(set(self._flushing))
            else:
                self._start_batches()
        await self._committer.connections.close()

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
            await self._committer.commit(batch)
        finally:
            for request in batch:
                self._busy.discard(request.persistence_id)
