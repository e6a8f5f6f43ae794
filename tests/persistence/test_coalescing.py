"""The scheduling shared by recovery reads and lease acquisition and release
(:class:`persistence.postgres.coalescing.Coalescer`), without a database: requests made
together share a batch, groups never mix, the weight and in-flight bounds hold, every caller
hears its own answer or its own error, and a caller that gives up harms no other."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Hashable

import psycopg
import pytest

from persistence.errors import SchemaError, StorageUnavailable
from persistence.postgres.coalescing import Coalescer, batch_failure


class Recorder:
    """A ``run`` that records its batches and answers ``request * 10``; ``gate`` holds it."""

    def __init__(self) -> None:
        self.batches: list[tuple[Hashable, list[int]]] = []
        self.running = 0
        self.most_running = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.error: BaseException | None = None

    async def run(self, group: Hashable, batch: list[int]) -> list[int]:
        self.batches.append((group, batch))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate.wait()
            if self.error is not None:
                raise self.error
            return [request * 10 for request in batch]
        finally:
            self.running -= 1


def failure(request: int, group: Hashable, exc: BaseException) -> BaseException:
    return batch_failure(f"request {request} of {group}", exc)


def coalescer(
    recorder: Recorder, *, max_in_flight: int = 2, max_weight: int = 100, weighted: bool = False
) -> Coalescer[int, int]:
    return Coalescer(
        recorder.run,
        failure,
        what="test",
        max_in_flight=max_in_flight,
        max_weight=max_weight,
        weight=(lambda request: request) if weighted else None,
    )


async def test_requests_made_together_share_one_batch_per_group() -> None:
    recorder = Recorder()
    batches = coalescer(recorder)
    answers = await asyncio.gather(
        *[batches.submit(n, "a") for n in range(5)], *[batches.submit(n, "b") for n in range(3)]
    )
    assert answers == [0, 10, 20, 30, 40, 0, 10, 20]
    assert sorted(recorder.batches) == [("a", [0, 1, 2, 3, 4]), ("b", [0, 1, 2])]
    assert batches.batches == 2


async def test_a_batch_takes_requests_while_their_weight_fits_and_always_one() -> None:
    recorder = Recorder()
    batches = coalescer(recorder, max_in_flight=1, max_weight=10, weighted=True)
    answers = await asyncio.gather(*[batches.submit(n) for n in (4, 5, 2, 30, 1)])
    assert answers == [40, 50, 20, 300, 10]
    assert [batch for _, batch in recorder.batches] == [[4, 5], [2], [30], [1]]


async def test_at_most_max_in_flight_batches_run_and_the_next_starts_when_one_returns() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batches = coalescer(recorder, max_in_flight=2, max_weight=1)
    tasks = [asyncio.create_task(batches.submit(n)) for n in range(6)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert recorder.running == 2 and len(recorder.batches) == 2
    recorder.gate.set()
    assert await asyncio.gather(*tasks) == [n * 10 for n in range(6)]
    assert recorder.most_running == 2 and len(recorder.batches) == 6


async def test_a_failed_batch_gives_every_caller_its_own_translated_error() -> None:
    recorder = Recorder()
    recorder.error = psycopg.errors.UndefinedTable("relation x does not exist")
    batches = coalescer(recorder)
    results = await asyncio.gather(*[batches.submit(n, "g") for n in range(3)],
                                   return_exceptions=True)
    assert all(isinstance(r, SchemaError) for r in results)
    assert [str(r) for r in results] == [
        f"request {n} of g: relation x does not exist" for n in range(3)
    ]
    assert len({id(r) for r in results}) == 3
    assert batches.batches == 0
    recorder.error = StorageUnavailable("no connection within 5 s")
    lost = await asyncio.gather(batches.submit(7), return_exceptions=True)
    assert isinstance(lost[0], StorageUnavailable) and str(lost[0]).startswith("request 7 of None")


async def test_a_bug_in_run_reaches_every_caller_as_it_was() -> None:
    recorder = Recorder()
    recorder.error = KeyError("bug")
    batches = coalescer(recorder)
    results = await asyncio.gather(*[batches.submit(n) for n in range(2)], return_exceptions=True)
    assert all(isinstance(r, KeyError) for r in results)


async def test_an_answer_count_that_does_not_match_fails_the_batch() -> None:
    async def short(_: Hashable, batch: list[int]) -> list[int]:
        return batch[1:]

    batches: Coalescer[int, int] = Coalescer(
        short, failure, what="short", max_in_flight=1, max_weight=10
    )
    results = await asyncio.gather(*[batches.submit(n) for n in range(3)], return_exceptions=True)
    assert all(isinstance(r, AssertionError) for r in results), results


@pytest.mark.parametrize("turns", [0, 2], ids=["queued", "in-flight"])
async def test_a_cancelled_caller_leaves_the_others_their_answers(turns: int) -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batches = coalescer(recorder)
    tasks = [asyncio.create_task(batches.submit(n)) for n in range(5)]
    await asyncio.sleep(0)  # every caller has queued
    for _ in range(turns):
        await asyncio.sleep(0)
    tasks[2].cancel()
    recorder.gate.set()
    await asyncio.wait(tasks)
    assert tasks[2].cancelled()
    assert [t.result() for t in tasks if t is not tasks[2]] == [0, 10, 30, 40]
    taken = [n for _, batch in recorder.batches for n in batch]
    assert taken == ([0, 1, 3, 4] if turns == 0 else [0, 1, 2, 3, 4])


async def test_a_cancelled_batch_cancels_its_callers_and_wait_idle_returns() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batches = coalescer(recorder)
    tasks = [asyncio.create_task(batches.submit(n)) for n in range(3)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert recorder.running == 1
    for task in list(batches._tasks):
        task.cancel()
    await asyncio.wait(tasks)
    assert all(task.cancelled() for task in tasks)
    await asyncio.wait_for(batches.wait_idle(), 5)


async def test_wait_idle_waits_for_queued_and_running_requests() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batches = coalescer(recorder, max_in_flight=1, max_weight=1)
    tasks = [asyncio.create_task(batches.submit(n)) for n in range(3)]
    await asyncio.sleep(0)
    idle = asyncio.create_task(batches.wait_idle())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not idle.done()
    recorder.gate.set()
    await asyncio.wait_for(idle, 5)
    assert all(task.done() for task in tasks) and len(recorder.batches) == 3


def test_the_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError):
        coalescer(Recorder(), max_in_flight=0)
    with pytest.raises(ValueError):
        coalescer(Recorder(), max_weight=0)


async def test_more_answers_than_requests_fail_the_batch_too() -> None:
    async def long(_: Hashable, batch: list[int]) -> list[int]:
        return [*batch, 99]

    batches: Coalescer[int, int] = Coalescer(
        long, failure, what="long", max_in_flight=1, max_weight=10
    )
    results = await asyncio.gather(*[batches.submit(n) for n in range(3)], return_exceptions=True)
    assert all(isinstance(r, AssertionError) for r in results), results


async def test_the_in_flight_bound_holds_for_requests_that_arrive_while_a_batch_runs() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batches = coalescer(recorder, max_in_flight=1)
    first = asyncio.create_task(batches.submit(1, "g"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert recorder.running == 1
    later = [asyncio.create_task(batches.submit(n, "g")) for n in (2, 3)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert recorder.running == 1 and len(recorder.batches) == 1  # the later ones wait
    recorder.gate.set()
    assert await asyncio.wait_for(asyncio.gather(first, *later), 5) == [10, 20, 30]
    assert recorder.most_running == 1
    assert recorder.batches == [("g", [1]), ("g", [2, 3])]


async def test_wait_idle_waits_for_a_running_batch_with_nothing_queued() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    batches = coalescer(recorder)
    task = asyncio.create_task(batches.submit(1))
    for _ in range(3):
        await asyncio.sleep(0)
    assert recorder.running == 1
    idle = asyncio.create_task(batches.wait_idle())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not idle.done()
    recorder.gate.set()
    await asyncio.wait_for(idle, 5)
    assert task.result() == 10


async def test_a_caller_cancelled_at_the_head_of_the_queue_delays_no_other() -> None:
    recorder = Recorder()
    batches = coalescer(recorder, max_in_flight=1)
    tasks = [asyncio.create_task(batches.submit(n)) for n in range(5)]
    await asyncio.sleep(0)  # every caller has queued; the batch starts on the next turn
    tasks[0].cancel()
    _, pending = await asyncio.wait(tasks, timeout=5)
    assert not pending
    assert [t.result() for t in tasks[1:]] == [10, 20, 30, 40]
    assert recorder.batches == [(None, [1, 2, 3, 4])]


async def test_a_successful_or_cancelled_batch_logs_nothing_and_leaves_no_loop_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop_errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: loop_errors.append(context))
    recorder = Recorder()
    batches = coalescer(recorder)
    assert await asyncio.gather(*[batches.submit(n) for n in range(3)]) == [0, 10, 20]
    recorder.gate.clear()
    tasks = [asyncio.create_task(batches.submit(n)) for n in range(2)]
    for _ in range(3):
        await asyncio.sleep(0)
    for task in list(batches._tasks):
        task.cancel()
    await asyncio.wait(tasks)
    await asyncio.sleep(0)
    assert not loop_errors and not caplog.records


async def test_a_request_that_fills_the_remaining_weight_exactly_joins_the_batch() -> None:
    recorder = Recorder()
    batches = coalescer(recorder, max_in_flight=1, max_weight=10, weighted=True)
    assert await asyncio.gather(*[batches.submit(n) for n in (4, 6, 1)]) == [40, 60, 10]
    assert [batch for _, batch in recorder.batches] == [[4, 6], [1]]


async def test_a_failed_batch_reaches_every_caller_after_one_that_gave_up() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    recorder.error = StorageUnavailable("server closed the connection")
    batches = coalescer(recorder)
    tasks = [asyncio.create_task(batches.submit(n)) for n in range(4)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert recorder.running == 1
    tasks[1].cancel()  # while its batch runs: its answer will have no one to hear it
    recorder.gate.set()
    _, pending = await asyncio.wait(tasks, timeout=5)
    assert not pending and tasks[1].cancelled()
    for n in (0, 2, 3):
        error = tasks[n].exception()
        assert isinstance(error, StorageUnavailable) and str(error).startswith(f"request {n} ")


async def test_a_batch_task_ends_as_its_batch_did_failed_batches_leave_no_stray_error() -> None:
    """A failure is the callers' to hear, not the batch task's (an exception left in a task
    is reported as never retrieved); a cancelled batch ends cancelled."""
    loop_errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: loop_errors.append(context))
    recorder = Recorder()
    recorder.gate.clear()
    recorder.error = StorageUnavailable("gone")
    batches = coalescer(recorder)
    failing = [asyncio.create_task(batches.submit(n)) for n in range(2)]
    for _ in range(3):
        await asyncio.sleep(0)
    (batch_task,) = batches._tasks
    recorder.gate.set()
    await asyncio.wait(failing)
    assert all(isinstance(task.exception(), StorageUnavailable) for task in failing)
    await asyncio.wait([batch_task])
    assert batch_task.exception() is None
    recorder.error = None
    recorder.gate.clear()
    cancelled = [asyncio.create_task(batches.submit(n)) for n in range(2)]
    for _ in range(3):
        await asyncio.sleep(0)
    (batch_task,) = batches._tasks
    batch_task.cancel()
    await asyncio.wait([batch_task, *cancelled])
    assert batch_task.cancelled() and all(task.cancelled() for task in cancelled)
    del batch_task, failing, cancelled
    gc.collect()
    await asyncio.sleep(0)
    assert not loop_errors
