"""Concurrent requests of one kind answered by shared statements: the scheduling that
recovery reads, lease acquisitions and lease releases have in common.

When thousands of actors start or stop together, each asks the database the same small
question about its own key. One round trip and one pooled connection per question made
those bursts queue on the pool (a shutdown of 1,000 users timed out its lease releases
after 5 s on a busy machine). :class:`Coalescer` gathers the questions and hands them to a
``run`` function in batches, the way :mod:`persistence.postgres.writer` shares one commit
among appends:

* a request joins a queue of its *group* (an instance id, say; ``None`` when there is one
  kind of caller), and batches start one event-loop turn later, so that requests made
  together share one;
* each group has at most ``max_in_flight`` batches running; what arrives meanwhile waits,
  and a batch that returns starts the next one at once;
* a batch takes requests in arrival order while their ``weight`` fits in ``max_weight``
  (always at least one), which bounds the rows one statement locks or returns;
* a caller that gave up (cancelled, timed out) is dropped from the queue, or its answer is
  dropped if its batch was already running: the other callers of the batch are unharmed.

Invariants: every caller of a batch hears exactly one outcome, the answer ``run`` gave for
its own request (same position) or the batch's failure as ``fail`` translates it for that
caller (its own exception object, naming its own key); a cancelled batch cancels its
callers; :meth:`wait_idle` returns only when no request is queued or running, so that the
owner may close its pool after it.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import psycopg

from persistence.errors import SchemaError, StorageUnavailable

Req = TypeVar("Req")
Res = TypeVar("Res")

Run = Callable[[Hashable, list[Req]], Awaitable[Sequence[Res]]]
"""Answers one batch of a group: one result per request, in the batch's order."""

Fail = Callable[[Req, Hashable, BaseException], BaseException]
"""The error one caller hears when its batch failed (a new object per caller)."""


@dataclass(slots=True)
class _Waiter(Generic[Req, Res]):
    request: Req
    future: asyncio.Future[Res]


@dataclass(slots=True)
class _Queue(Generic[Req, Res]):
    """One group's waiting requests and how many of its batches are running."""

    pending: deque[_Waiter[Req, Res]] = field(default_factory=deque)
    in_flight: int = 0


class Coalescer(Generic[Req, Res]):
    """Requests submitted concurrently, answered by ``run`` in batches (see the module)."""

    def __init__(
        self,
        run: Run[Req, Res],
        fail: Fail[Req],
        *,
        what: str,
        max_in_flight: int,
        max_weight: int,
        weight: Callable[[Req], int] | None = None,
    ) -> None:
        if max_in_flight < 1 or max_weight < 1:
            raise ValueError("max_in_flight and max_weight must be at least 1")
        self._run_batch = run
        self._fail = fail
        self._what = what
        self._max_in_flight = max_in_flight
        self._max_weight = max_weight
        self._weight = weight
        self._queues: dict[Hashable, _Queue[Req, Res]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._start_scheduled = False
        self.batches = 0
        """How many batches ``run`` answered (for benchmarks and tests)."""

    async def submit(self, request: Req, group: Hashable = None) -> Res:
        """``request``'s answer from the next batch of ``group`` that takes it."""
        future: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(group)
        if queue is None:
            queue = self._queues[group] = _Queue()
        queue.pending.append(_Waiter(request, future))
        self._kick()
        return await future

    async def wait_idle(self) -> None:
        """Wait until every queued request has been answered."""
        while self._tasks or any(queue.pending for queue in self._queues.values()):
            if self._tasks:
                await asyncio.wait(set(self._tasks))
            else:
                self._start_batches()

    def _kick(self) -> None:
        if not self._start_scheduled:
            self._start_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_batches)

    def _start_batches(self) -> None:
        self._start_scheduled = False
        loop = asyncio.get_running_loop()
        for group, queue in list(self._queues.items()):
            while queue.in_flight < self._max_in_flight and queue.pending:
                batch = self._take_batch(queue)
                if not batch:
                    break
                queue.in_flight += 1
                task = loop.create_task(self._answer(group, batch))
                self._tasks.add(task)
                task.add_done_callback(functools.partial(self._batch_done, queue))
            if not queue.pending and not queue.in_flight:
                del self._queues[group]

    def _batch_done(self, queue: _Queue[Req, Res], task: asyncio.Task[None]) -> None:
        """A batch ended (answered, failed or cancelled: :meth:`_answer` settles its callers
        in every case, and lets only a ``BaseException`` that stops the loop escape)."""
        self._tasks.discard(task)
        queue.in_flight -= 1
        self._kick()

    def _take_batch(self, queue: _Queue[Req, Res]) -> list[_Waiter[Req, Res]]:
        """The next requests whose weights fit in ``max_weight`` (at least one); requests
        whose callers gave up are dropped."""
        budget = self._max_weight
        weight = self._weight
        batch: list[_Waiter[Req, Res]] = []
        pending = queue.pending
        while pending:
            waiter = pending[0]
            if waiter.future.done():
                pending.popleft()
                continue
            cost = 1 if weight is None else weight(waiter.request)
            if batch and cost > budget:
                break
            batch.append(pending.popleft())
            budget -= cost
        return batch

    async def _answer(self, group: Hashable, batch: list[_Waiter[Req, Res]]) -> None:
        """Run one batch and settle every caller still waiting for it."""
        try:
            results = await self._run_batch(group, [waiter.request for waiter in batch])
            if len(results) != len(batch):
                raise AssertionError(
                    f"{self._what}: {len(results)} answers for {len(batch)} requests"
                )
        except BaseException as exc:  # every caller must hear about it, whatever it was
            for waiter in batch:
                if waiter.future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    waiter.future.cancel()
                else:
                    waiter.future.set_exception(self._fail(waiter.request, group, exc))
            if not isinstance(exc, Exception):
                raise
            return
        self.batches += 1
        for waiter, result in zip(batch, results, strict=True):
            if not waiter.future.done():
                waiter.future.set_result(result)


def batch_failure(what: str, exc: BaseException) -> BaseException:
    """The error one caller of a failed batch hears, ``what`` naming its own request: a
    missing table or column as :class:`~persistence.errors.SchemaError`, any other driver
    error or a lost connection as :class:`~persistence.errors.StorageUnavailable`; anything
    else (a bug) as it was. A new object per caller, chained to the batch's error."""
    error: BaseException
    if isinstance(exc, (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn)):
        error = SchemaError(f"{what}: {one_line(exc)}")
    elif isinstance(exc, psycopg.Error):
        error = StorageUnavailable(f"{what}: {one_line(exc)}")
    elif isinstance(exc, StorageUnavailable):
        error = StorageUnavailable(f"{what}: {exc}")
    else:
        return exc
    error.__cause__ = exc
    return error


def one_line(exc: BaseException) -> str:
    """``exc``'s message on one line (the server's are often several)."""
    return " ".join(str(exc).split()) or type(exc).__name__
