"""spawn_stateless: max_concurrency really runs N at once, and on_crash is honoured."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors import (
    ActorCrashed,
    ActorSystem,
    Context,
    Decision,
    dispatch,
    query,
    spawn_stateless,
    stop,
)
from tests.actors.conftest import eventually, settle
from tests.actors.test_supervision import Boom, alive, stopped


async def test_max_concurrency_runs_that_many_at_once_in_arrival_order(
    system: ActorSystem,
) -> None:
    gate = asyncio.Event()
    running: list[int] = []
    started: list[int] = []
    peak = [0]

    async def work(msg: int, ctx: Context) -> None:
        started.append(msg)
        running.append(msg)
        peak[0] = max(peak[0], len(running))
        await gate.wait()
        running.remove(msg)
        ctx.reply(msg)

    ref = spawn_stateless(system, work, "pool", max_concurrency=3)
    replies = [asyncio.ensure_future(query(ref, i, 5)) for i in range(7)]
    await eventually(lambda: len(running) == 3)
    await settle()
    assert sorted(running) == [0, 1, 2] and started == [0, 1, 2]
    gate.set()
    assert await asyncio.gather(*replies) == list(range(7))  # each reply to its own sender
    assert peak[0] == 3
    assert started == list(range(7))


async def test_default_concurrency_is_one(system: ActorSystem) -> None:
    running = [0]
    peak = [0]

    async def work(msg: int, ctx: Context) -> None:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(0)
        running[0] -= 1
        ctx.reply(msg)

    ref = spawn_stateless(system, work)
    assert await asyncio.gather(*(query(ref, i, 5) for i in range(5))) == list(range(5))
    assert peak[0] == 1


@pytest.mark.parametrize("max_concurrency", [0, -1, 1.5, True, "2"])
async def test_max_concurrency_is_validated(system: ActorSystem, max_concurrency: Any) -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        spawn_stateless(system, lambda m, c: None, max_concurrency=max_concurrency)


def flaky(msg: Any, ctx: Context) -> None:
    if msg == "boom":
        raise Boom("boom")
    ctx.reply(msg)


@pytest.mark.parametrize("max_concurrency", [1, 4])
async def test_the_default_on_crash_stops_it(system: ActorSystem, max_concurrency: int) -> None:
    ref = spawn_stateless(system, flaky, max_concurrency=max_concurrency)
    with pytest.raises(ActorCrashed):
        await query(ref, "boom", 5)
    await stopped(ref)


@pytest.mark.parametrize("max_concurrency", [1, 4])
async def test_on_crash_is_honoured(system: ActorSystem, max_concurrency: int) -> None:
    decisions: list[object] = []

    def on_crash(msg: object, error: BaseException, ctx: Context) -> Decision:
        decisions.append((msg, type(error)))
        return Decision.RESUME

    ref = spawn_stateless(system, flaky, max_concurrency=max_concurrency, on_crash=on_crash)
    dispatch(ref, "boom")
    assert await query(ref, "still here", 5) == "still here"
    await eventually(lambda: len(decisions) == 1)
    assert decisions == [("boom", Boom)]
    assert alive(ref)


async def test_reset_decision_restarts_a_concurrent_stateless_actor(system: ActorSystem) -> None:
    starts: list[str] = []

    def on_crash(msg: object, error: BaseException, ctx: Context) -> Decision:
        starts.append("crash")
        return Decision.RESET

    ref = spawn_stateless(system, flaky, max_concurrency=2, on_crash=on_crash)
    child = spawn_stateless(ref, flaky, "child")
    dispatch(ref, "boom")
    await eventually(lambda: not alive(child))
    assert alive(ref)
    assert await query(ref, "ok", 5) == "ok"
    assert starts == ["crash"]


async def test_stop_waits_for_the_handlers_in_flight(system: ActorSystem) -> None:
    gate = asyncio.Event()
    finished: list[int] = []

    async def work(msg: int, ctx: Context) -> None:
        await gate.wait()
        finished.append(msg)

    ref = spawn_stateless(system, work, max_concurrency=3)
    for i in range(3):
        dispatch(ref, i)
    await settle()
    stopping = asyncio.ensure_future(stop(ref))
    await settle()
    assert not stopping.done()
    gate.set()
    await stopping
    assert sorted(finished) == [0, 1, 2]
