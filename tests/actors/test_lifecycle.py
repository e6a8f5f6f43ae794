"""stop (idempotent, children first, after_stop sees the mailbox) and passivation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from actors import (
    ActorNotFound,
    ActorRef,
    ActorSystem,
    Context,
    DuplicateActorName,
    dispatch,
    query,
    spawn,
    stop,
)
from tests.actors.conftest import settle
from tests.actors.test_supervision import alive, counter


async def test_stop_is_idempotent_and_concurrent_stops_all_wait(system: ActorSystem) -> None:
    calls: list[str] = []
    gate = asyncio.Event()

    async def after_stop(state: int, ctx: Context) -> None:
        calls.append(ctx.path)
        await gate.wait()

    ref = spawn(system, counter, "once", initial_state=0, after_stop=after_stop)
    stops = [asyncio.ensure_future(stop(ref)) for _ in range(3)]
    await settle()
    assert not any(s.done() for s in stops)
    gate.set()
    await asyncio.gather(*stops)
    await stop(ref)
    assert calls == ["test/once"]
    assert system.metrics.live_actors == 0


async def test_stop_stops_children_first(system: ActorSystem) -> None:
    order: list[str] = []

    def tree(state: None, msg: Any, ctx: Context) -> None:
        depth = msg
        if depth:
            for i in range(2):
                child = spawn(ctx, tree, f"c{i}", after_stop=record)
                dispatch(child, depth - 1)

    def record(state: None, ctx: Context) -> None:
        assert not ctx.children, f"{ctx.path} stopped before its children"
        order.append(ctx.path)

    root = spawn(system, tree, "root", after_stop=record)
    dispatch(root, 2)
    await settle(50)
    await stop(root)
    assert len(order) == 7
    assert order[-1] == "test/root"
    for path in order:
        parent = path.rsplit("/", 1)[0]
        if parent != "test":
            assert order.index(parent) > order.index(path)


async def test_after_stop_sees_the_unprocessed_mailbox_in_order(system: ActorSystem) -> None:
    gate = asyncio.Event()
    seen: list[tuple[object, ...]] = []

    async def slow(state: int, msg: Any, ctx: Context) -> int:
        await gate.wait()
        return state + 1

    def after_stop(state: int, ctx: Context) -> None:
        seen.append((state, *ctx.unprocessed))

    ref = spawn(system, slow, initial_state=0, after_stop=after_stop)
    for msg in ("first", "second", "third"):
        dispatch(ref, msg)
    await settle()
    stopping = asyncio.ensure_future(stop(ref))
    await settle()
    dispatch(ref, "after stop")  # a dead letter
    gate.set()
    await stopping
    assert seen == [(1, "second", "third")]
    assert system.metrics.dead_letters == 1


async def test_an_actor_can_stop_itself_from_its_handler(system: ActorSystem) -> None:
    stops: list[str] = []

    async def handler(state: int, msg: Any, ctx: Context) -> int:
        if msg == "quit":
            await stop(ctx.self)  # must not wait for itself
            return state
        return state + 1

    ref = spawn(system, handler, initial_state=0, after_stop=lambda s, c: stops.append(c.path))
    dispatch(ref, 1)
    dispatch(ref, "quit")
    dispatch(ref, 2)
    await asyncio.wait_for(stop(ref), 5)
    assert stops == [ref.path]


async def test_a_child_can_stop_its_parent_from_its_handler(system: ActorSystem) -> None:
    async def child_handler(state: None, msg: Any, ctx: Context) -> None:
        parent = ctx.parent
        assert isinstance(parent, ActorRef)
        await stop(parent)

    def parent_handler(state: None, msg: Any, ctx: Context) -> None:
        dispatch(spawn(ctx, child_handler, "child"), "stop my parent")

    parent = spawn(system, parent_handler, "parent")
    dispatch(parent, "go")
    await asyncio.wait_for(stop(parent), 5)
    assert not alive(parent)


async def test_a_parent_awaiting_a_child_stop_in_its_handler(system: ActorSystem) -> None:
    async def parent_handler(state: ActorRef | None, msg: Any, ctx: Context) -> ActorRef | None:
        if msg == "spawn":
            return spawn(ctx, counter, "child", initial_state=0)
        assert state is not None
        await stop(state)
        ctx.reply(dict(ctx.children))
        return None

    parent = spawn(system, parent_handler, "parent")
    dispatch(parent, "spawn")
    assert await query(parent, "stop child", 5) == {}


async def test_spawning_under_a_stopped_actor_fails(system: ActorSystem) -> None:
    ref = spawn(system, counter, initial_state=0)
    await stop(ref)
    with pytest.raises(ActorNotFound, match="takes no new children"):
        spawn(ref, counter)


# -- passivation (shutdown_after) ---------------------------------------------------------


@pytest.fixture
async def fake_clock() -> AsyncIterator[Callable[[float], None]]:
    """Replace the running loop's clock so timers fire only when the test advances it."""
    loop = asyncio.get_running_loop()
    now = [loop.time()]
    original = loop.time
    loop.time = lambda: now[0]  # type: ignore[method-assign]

    def advance(seconds: float) -> None:
        now[0] += seconds

    yield advance
    loop.time = original  # type: ignore[method-assign]


async def test_shutdown_after_passivates_an_idle_actor_and_frees_its_name(
    system: ActorSystem, fake_clock: Callable[[float], None]
) -> None:
    ref = spawn(system, counter, "sleepy", initial_state=0, shutdown_after=10)
    await settle()
    fake_clock(9)
    await settle()
    assert alive(ref)
    dispatch(ref, 1)  # restarts the timer
    await settle()
    fake_clock(9)  # 18s since spawn, 9s since the last message
    await settle()
    assert alive(ref)
    dispatch(ref, 1)
    await settle()
    fake_clock(9.5)
    await settle()
    assert alive(ref)
    fake_clock(1)
    await settle()
    assert not alive(ref)
    assert system.metrics.passivations == 1
    with pytest.raises(ActorNotFound):
        await query(ref, "get", 1)
    again = spawn(system, counter, "sleepy", initial_state=0)
    assert again is not ref


async def test_a_busy_actor_is_not_passivated(
    system: ActorSystem, fake_clock: Callable[[float], None]
) -> None:
    gate = asyncio.Event()

    async def slow(state: None, msg: Any, ctx: Context) -> None:
        await gate.wait()

    ref = spawn(system, slow, "busy", shutdown_after=5)
    await settle()
    dispatch(ref, "work")
    await settle()
    fake_clock(60)
    await settle()
    assert alive(ref)
    gate.set()
    await settle()
    fake_clock(4)
    await settle()
    assert alive(ref)
    fake_clock(2)
    await settle()
    assert not alive(ref)


@pytest.mark.parametrize("value", [0, -1, float("inf"), float("nan"), "10"])
async def test_shutdown_after_is_validated(system: ActorSystem, value: Any) -> None:
    with pytest.raises(ValueError, match="shutdown_after"):
        spawn(system, counter, shutdown_after=value)


async def test_a_huge_shutdown_after_does_not_fire_at_once(system: ActorSystem) -> None:
    ref = spawn(system, counter, initial_state=0, shutdown_after=1e12)
    await settle()
    dispatch(ref, 1)
    assert await query(ref, "get", 5) == 1
    await settle()
    assert alive(ref)


async def test_a_stopping_actor_frees_its_name_at_once(system: ActorSystem) -> None:
    gate = asyncio.Event()

    async def after_stop(state: int, ctx: Context) -> None:
        await gate.wait()

    ref = spawn(system, counter, "name", initial_state=0, after_stop=after_stop)
    stopping = asyncio.ensure_future(stop(ref))
    await settle()
    assert "name" not in system.children
    replacement = spawn(system, counter, "name", initial_state=0)
    with pytest.raises(DuplicateActorName):
        spawn(system, counter, "name")
    gate.set()
    await stopping
    assert system.children["name"] is replacement


async def test_an_error_escaping_the_runtime_stops_the_actor_instead_of_leaving_it_half_alive(
    system: ActorSystem, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Everything a behaviour raises is supervised; a fault of supervision itself (injected
    here) used to end the drain task and leave the actor neither running nor stopped."""

    async def broken(*_: object) -> object:
        raise RuntimeError("supervision bug")

    monkeypatch.setattr("actors.supervision.decide", broken)
    ref = spawn(system, counter, "victim", initial_state=0)
    dispatch(ref, "boom")
    behind = asyncio.ensure_future(query(ref, "get", 30))
    with pytest.raises(ActorNotFound):
        await asyncio.wait_for(behind, 5)  # turned away at the stop, not left to time out
    await asyncio.wait_for(stop(ref), 5)  # returns: the actor did stop
    assert system.metrics.live_actors == 0
    assert any("the runtime failed" in r.getMessage() for r in caplog.records)
