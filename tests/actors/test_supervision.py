"""Each supervision decision's exact effect, escalations included (see actors/supervision.py)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from actors import (
    ActorCrashed,
    ActorNotFound,
    ActorRef,
    ActorSystem,
    Behaviour,
    Context,
    Decision,
    Escalation,
    dispatch,
    query,
    spawn,
    spawn_behaviour,
    stop,
)
from actors.cell import Cell
from tests.actors.conftest import eventually, settle


class Boom(Exception):
    """The fault the tests inject."""


def always(decision: Decision) -> Any:
    def on_crash(msg: object, error: BaseException, ctx: Context) -> Decision:
        return decision

    return on_crash


def counter(state: int, msg: Any, ctx: Context) -> int:
    """Adds ints; "get" replies the state; "boom" raises; ("child", name) spawns a child."""
    if msg == "get":
        ctx.reply(state)
        return state
    if msg == "boom":
        raise Boom("boom")
    if isinstance(msg, tuple) and msg[0] == "child":
        ctx.reply(spawn(ctx, counter, msg[1], initial_state=0, on_crash=msg[2]))
        return state
    return state + int(msg)


def alive(ref: ActorRef) -> bool:
    cell = ref._cell  # type: ignore[attr-defined]
    assert isinstance(cell, Cell)
    return not cell.stopping


async def stopped(ref: ActorRef) -> None:
    await eventually(lambda: not alive(ref))
    await stop(ref)  # idempotent: waits for the stop to complete


class Recorder(Behaviour):
    """A behaviour that logs its life cycle and can be told to fail."""

    def __init__(self, decision: Decision = Decision.STOP, fail_started: int = 0) -> None:
        self.events: list[str] = []
        self.decision = decision
        self.fail_started = fail_started
        self.state = 0
        self.busy = False
        self.crash_args: list[tuple[object, BaseException]] = []

    async def started(self, ctx: Context) -> None:
        self.events.append("started")
        if self.fail_started:
            self.fail_started -= 1
            raise Boom("in started")

    async def receive(self, msg: object, ctx: Context) -> None:
        assert not self.busy, "re-entrancy"
        self.busy = True
        try:
            await asyncio.sleep(0)
            self.events.append(f"msg:{msg}")
            if msg == "boom":
                raise Boom("boom")
            if msg == "get":
                ctx.reply(self.state)
            elif isinstance(msg, int):
                self.state += msg
        finally:
            self.busy = False

    def reset(self) -> None:
        assert not self.busy, "reset while handling a message"
        self.events.append("reset")
        self.state = 0

    async def stopped(self, ctx: Context, unprocessed: list[object]) -> None:
        self.events.append(f"stopped:{unprocessed}")

    async def on_crash(self, msg: object, error: BaseException, ctx: Context) -> Decision:
        assert not self.busy, "on_crash re-entered a busy actor"
        self.crash_args.append((msg, error))
        self.events.append(f"crash:{msg}")
        return self.decision


# -- the fault itself --------------------------------------------------------------------


async def test_a_fault_is_logged_once_at_error_with_type_error_and_path(
    system: ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    ref = spawn(system, counter, "faulty", initial_state=0)
    with caplog.at_level(logging.DEBUG):
        dispatch(ref, "boom")
        await stopped(ref)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    text = errors[0].getMessage()
    assert "test/faulty" in text and "str" in text and "Boom('boom')" in text
    assert errors[0].name == "actors.test.faulty"
    assert errors[0].exc_info is not None
    assert system.metrics.faults == 1


@pytest.mark.parametrize("decision", [Decision.STOP, Decision.RESUME, Decision.RESET,
                                      Decision.ESCALATE])
async def test_a_query_whose_message_crashed_fails_at_once(
    system: ActorSystem, decision: Decision
) -> None:
    ref = spawn(system, counter, initial_state=0, on_crash=always(decision))
    with pytest.raises(ActorCrashed) as info:
        await query(ref, "boom", 1e9)
    assert isinstance(info.value.error, Boom)


# -- decisions about an actor's own fault -----------------------------------------------


async def test_stop_is_the_default_and_after_stop_sees_the_rest_of_the_mailbox(
    system: ActorSystem,
) -> None:
    seen: dict[str, Any] = {}

    def after_stop(state: int, ctx: Context) -> None:
        seen["state"] = state
        seen["unprocessed"] = ctx.unprocessed

    gate = asyncio.Event()

    async def handler(state: int, msg: Any, ctx: Context) -> int:
        await gate.wait()
        if msg == "boom":
            raise Boom("boom")
        return state + msg

    ref = spawn(system, handler, "victim", initial_state=0, after_stop=after_stop)
    for msg in (1, "boom", 2, 3):
        dispatch(ref, msg)
    gate.set()
    await stopped(ref)
    assert seen == {"state": 1, "unprocessed": (2, 3)}


async def test_resume_keeps_the_state_and_goes_on_in_order(system: ActorSystem) -> None:
    ref = spawn(system, counter, initial_state=0, on_crash=always(Decision.RESUME))
    for msg in (1, "boom", 10, "boom", 100):
        dispatch(ref, msg)
    assert await query(ref, "get", 5) == 111


async def test_reset_resets_stops_children_and_restarts_before_the_next_message(
    system: ActorSystem,
) -> None:
    behaviour = Recorder(Decision.RESET)
    ref = spawn_behaviour(system, behaviour, "resettable")
    child = spawn(ref, counter, "child", initial_state=0)
    for msg in (5, "boom", 7):
        dispatch(ref, msg)
    assert await query(ref, "get", 5) == 7
    assert behaviour.events == [
        "started", "msg:5", "msg:boom", "crash:boom", "reset", "started", "msg:7", "msg:get",
    ]
    assert not alive(child)
    # The name of the stopped child is free again.
    spawn(ref, counter, "child")


async def test_reset_gives_a_functional_actor_a_fresh_initial_state(system: ActorSystem) -> None:
    def append(state: list[int], msg: Any, ctx: Context) -> list[int]:
        if msg == "get":
            ctx.reply(state)
        elif msg == "boom":
            raise Boom("boom")
        else:
            state.append(msg)  # mutates in place on purpose
        return state

    ref = spawn(system, append, initial_state=[], on_crash=always(Decision.RESET))
    for msg in (1, 2, "boom", 3):
        dispatch(ref, msg)
    assert await query(ref, "get", 5) == [3]


async def test_stop_all_stops_the_actor_and_its_siblings(system: ActorSystem) -> None:
    parent = spawn(system, counter, "parent", initial_state=0)
    faulty = await query(parent, ("child", "faulty", always(Decision.STOP_ALL)), 5)
    sibling = await query(parent, ("child", "sibling", None), 5)
    dispatch(faulty, "boom")
    await stopped(faulty)
    await stopped(sibling)
    assert alive(parent)
    assert await query(parent, "get", 5) == 0


async def test_reset_all_resets_the_actor_and_its_siblings(system: ActorSystem) -> None:
    parent = spawn(system, counter, "parent", initial_state=0)
    faulty = await query(parent, ("child", "faulty", always(Decision.RESET_ALL)), 5)
    sibling = await query(parent, ("child", "sibling", None), 5)
    dispatch(faulty, 1)
    dispatch(sibling, 2)
    assert await query(sibling, "get", 5) == 2
    dispatch(faulty, "boom")
    dispatch(faulty, 4)
    assert await query(faulty, "get", 5) == 4
    await eventually(lambda: system.metrics.messages_handled >= 8)
    assert await query(sibling, "get", 5) == 0
    assert alive(faulty) and alive(sibling) and alive(parent)


async def test_a_child_only_decision_for_an_own_fault_stops_the_actor(
    system: ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    ref = spawn(system, counter, initial_state=0, on_crash=always(Decision.RESET_CHILD))
    dispatch(ref, "boom")
    await stopped(ref)
    assert any("only valid for an escalation" in r.getMessage() for r in caplog.records)


async def test_an_on_crash_that_raises_or_answers_nonsense_stops_the_actor(
    system: ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(msg: object, error: BaseException, ctx: Context) -> Decision:
        raise RuntimeError("policy broke")

    first = spawn(system, counter, initial_state=0, on_crash=broken)
    second = spawn(system, counter, initial_state=0, on_crash=lambda m, e, c: "reset")
    dispatch(first, "boom")
    dispatch(second, "boom")
    await stopped(first)
    await stopped(second)
    messages = [r.getMessage() for r in caplog.records]
    assert any("policy broke" in m for m in messages)
    assert any("not a Decision" in m for m in messages)


async def test_an_on_crash_ending_in_a_stray_cancellation_stops_the_actor(
    system: ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    """A ``CancelledError`` nobody asked for (on_crash awaited something that was cancelled)
    is a broken answer like any other: the actor stops, ``after_stop`` sees its mailbox. Its
    task must not die with it, leaving an actor neither running nor stopped (its queries
    unanswered, ``stop`` and the system's close waiting for ever)."""
    seen: dict[str, Any] = {}

    async def cancelled(msg: object, error: BaseException, ctx: Context) -> Decision:
        gone = asyncio.get_running_loop().create_future()
        gone.cancel()
        await gone
        return Decision.RESUME

    def after_stop(state: int, ctx: Context) -> None:
        seen["unprocessed"] = ctx.unprocessed

    ref = spawn(system, counter, initial_state=0, on_crash=cancelled, after_stop=after_stop)
    for msg in ("boom", 1, 2):
        dispatch(ref, msg)
    await stopped(ref)
    assert seen == {"unprocessed": (1, 2)}
    assert any(
        r.levelno == logging.ERROR and "raised CancelledError" in r.getMessage()
        for r in caplog.records
    )


async def test_a_stop_during_on_crash_ends_it_quietly_with_a_stop(
    system: ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    """Stopping an actor cuts its on_crash short (a backoff delay): that cancellation is the
    stop's, not a broken on_crash, so nothing but the fault itself is logged at ERROR."""
    seen: dict[str, Any] = {}
    waiting = asyncio.Event()

    async def slow(msg: object, error: BaseException, ctx: Context) -> Decision:
        waiting.set()
        await asyncio.sleep(3600)
        return Decision.RESUME

    def after_stop(state: int, ctx: Context) -> None:
        seen["unprocessed"] = ctx.unprocessed

    ref = spawn(system, counter, initial_state=0, on_crash=slow, after_stop=after_stop)
    for msg in ("boom", 1):
        dispatch(ref, msg)
    await waiting.wait()
    await stop(ref)
    assert seen == {"unprocessed": (1,)}
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "failed in a str message" in errors[0], errors


def test_a_shutdown_during_on_crash_ends_the_actor_task_deciding_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``asyncio.run`` ending with the system still open cancels every task, the actor's
    among them while its on_crash waits: the task ends there, as a cancelled handler's does.
    The cancellation is neither a broken on_crash nor a stop: nothing is logged about it and
    ``after_stop`` does not run on the loop being torn down."""
    seen: list[object] = []

    class CallerCrashed(Exception):
        pass

    async def main() -> None:
        waiting = asyncio.Event()

        async def slow(msg: object, error: BaseException, ctx: Context) -> Decision:
            waiting.set()
            await asyncio.sleep(3600)
            return Decision.RESUME

        system = ActorSystem("shutdown")
        await system.__aenter__()
        ref = spawn(system, counter, initial_state=0, on_crash=slow,
                    after_stop=lambda state, ctx: seen.append(ctx.unprocessed))
        for msg in ("boom", 1):
            dispatch(ref, msg)
        await waiting.wait()
        raise CallerCrashed

    with pytest.raises(CallerCrashed):
        asyncio.run(main())
    assert seen == []
    assert not [r.getMessage() for r in caplog.records if "on_crash of" in r.getMessage()]


async def test_async_on_crash_is_awaited(system: ActorSystem) -> None:
    async def later(msg: object, error: BaseException, ctx: Context) -> Decision:
        await asyncio.sleep(0)
        return Decision.RESUME

    ref = spawn(system, counter, initial_state=1, on_crash=later)
    dispatch(ref, 4)  # the state moves away from its initial value: a RESET would show
    dispatch(ref, "boom")
    assert await query(ref, "get", 5) == 5  # RESUME kept it (a RESET would give 1)


async def test_a_fault_in_started_goes_through_supervision(system: ActorSystem) -> None:
    behaviour = Recorder(Decision.RESET, fail_started=2)
    ref = spawn_behaviour(system, behaviour)
    dispatch(ref, 3)
    assert await query(ref, "get", 5) == 3
    assert behaviour.crash_args[0][0] is None
    assert behaviour.events[:7] == [
        "started", "crash:None", "reset", "started", "crash:None", "reset", "started",
    ]


async def test_a_fault_in_started_with_stop_keeps_the_mailbox_for_stopped(
    system: ActorSystem,
) -> None:
    behaviour = Recorder(Decision.STOP, fail_started=1)
    ref = spawn_behaviour(system, behaviour)
    dispatch(ref, 1)
    dispatch(ref, 2)
    await stopped(ref)
    assert behaviour.events == ["started", "crash:None", "stopped:[1, 2]"]


async def test_no_reentrancy_and_arrival_order_under_every_own_decision(
    system: ActorSystem,
) -> None:
    for decision in (Decision.RESUME, Decision.RESET):
        behaviour = Recorder(decision)
        ref = spawn_behaviour(system, behaviour)
        msgs: list[object] = [1, "boom", 2, "boom", 3, 4, "boom", 5]
        for msg in msgs:
            dispatch(ref, msg)
        await query(ref, "get", 5)
        handled = [e[4:] for e in behaviour.events if e.startswith("msg:")]
        assert handled == [str(m) for m in msgs] + ["get"]


# -- escalation ----------------------------------------------------------------------------


async def test_escalation_to_the_root_stops_the_child_and_logs_it(
    system: ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    ref = spawn(system, counter, "top", initial_state=0, on_crash=always(Decision.ESCALATE))
    dispatch(ref, "boom")
    await stopped(ref)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("escalated to the root" in r.getMessage() and "test/top" in r.getMessage()
               for r in warnings)
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


async def escalating_pair(
    system: ActorSystem, parent_decision: Decision
) -> tuple[ActorRef, Recorder, ActorRef, Recorder]:
    parent_behaviour = Recorder(parent_decision)
    parent = spawn_behaviour(system, parent_behaviour, "parent")
    child_behaviour = Recorder(Decision.ESCALATE)
    child = spawn_behaviour(parent, child_behaviour, "child")
    return parent, parent_behaviour, child, child_behaviour


async def test_the_parent_sees_an_escalation_with_the_child_message_and_error(
    system: ActorSystem,
) -> None:
    _parent, pb, child, _ = await escalating_pair(system, Decision.STOP_CHILD)
    dispatch(child, "boom")
    await stopped(child)
    [(msg, error)] = pb.crash_args
    assert isinstance(msg, Escalation)
    assert msg.child is child and msg.msg == "boom" and msg.error is error
    assert isinstance(error, Boom)


async def test_stop_child(system: ActorSystem) -> None:
    parent, _pb, child, cb = await escalating_pair(system, Decision.STOP_CHILD)
    dispatch(child, 1)
    dispatch(child, "boom")
    dispatch(child, 2)
    await stopped(child)
    assert cb.events[-1] == "stopped:[2]"
    assert alive(parent)
    dispatch(parent, 5)
    assert await query(parent, "get", 5) == 5


async def test_reset_child(system: ActorSystem) -> None:
    parent, _pb, child, cb = await escalating_pair(system, Decision.RESET_CHILD)
    for msg in (1, "boom", 2):
        dispatch(child, msg)
    assert await query(child, "get", 5) == 2
    assert cb.events == ["started", "msg:1", "msg:boom", "crash:boom", "reset", "started",
                         "msg:2", "msg:get"]
    assert alive(parent)
    assert (system.metrics.faults, system.metrics.escalations, system.metrics.resets) == (1, 1, 1)


async def test_stop_all_children(system: ActorSystem) -> None:
    parent, _pb, child, _cb = await escalating_pair(system, Decision.STOP_ALL_CHILDREN)
    other = spawn(parent, counter, "other", initial_state=0)
    dispatch(child, "boom")
    await stopped(child)
    await stopped(other)
    assert alive(parent)


async def test_reset_all_children(system: ActorSystem) -> None:
    parent, _pb, child, cb = await escalating_pair(system, Decision.RESET_ALL_CHILDREN)
    other = spawn(parent, counter, "other", initial_state=0)
    dispatch(other, 9)
    assert await query(other, "get", 5) == 9
    dispatch(child, 4)
    dispatch(child, "boom")
    dispatch(child, 6)
    assert await query(child, "get", 5) == 6
    assert await query(other, "get", 5) == 0
    await settle()
    assert cb.events.count("reset") == 1  # the escalating child is reset once, not twice
    assert alive(parent) and alive(child) and alive(other)


async def test_resume_in_the_parent_stops_the_unaddressed_child(
    system: ActorSystem, caplog: pytest.LogCaptureFixture
) -> None:
    parent, _pb, child, _cb = await escalating_pair(system, Decision.RESUME)
    dispatch(parent, 3)
    dispatch(child, "boom")
    await stopped(child)
    assert any("resumed without deciding" in r.getMessage() for r in caplog.records)
    assert await query(parent, "get", 5) == 3


async def test_stop_in_the_parent_stops_parent_and_child(system: ActorSystem) -> None:
    parent, pb, child, cb = await escalating_pair(system, Decision.STOP)
    order: list[str] = []
    for name, behaviour in (("parent", pb), ("child", cb)):
        def recording(original: Any, name: str = name) -> Any:
            async def stopped_hook(ctx: Context, unprocessed: list[object]) -> None:
                order.append(name)
                await original(ctx, unprocessed)
            return stopped_hook
        behaviour.stopped = recording(behaviour.stopped)  # type: ignore[method-assign]
    dispatch(child, "boom")
    await stopped(parent)
    assert not alive(child)
    assert order == ["child", "parent"]  # children first
    assert cb.events[-1].startswith("stopped")
    assert pb.events[-1].startswith("stopped")


async def test_reset_in_the_parent_resets_it_and_stops_the_child(system: ActorSystem) -> None:
    parent, pb, child, _cb = await escalating_pair(system, Decision.RESET)
    dispatch(parent, 3)
    assert await query(parent, "get", 5) == 3
    dispatch(child, "boom")
    await stopped(child)
    assert await query(parent, "get", 5) == 0
    assert pb.events[-3:] == ["reset", "started", "msg:get"]


async def test_stop_all_and_reset_all_in_the_parent(system: ActorSystem) -> None:
    uncle = spawn(system, counter, "uncle", initial_state=0)
    parent, _pb, child, _cb = await escalating_pair(system, Decision.STOP_ALL)
    dispatch(child, "boom")
    await stopped(parent)
    await stopped(uncle)
    assert not alive(child)

    uncle = spawn(system, counter, "uncle2", initial_state=0)
    dispatch(uncle, 5)
    assert await query(uncle, "get", 5) == 5
    parent, pb, child, _cb = await escalating_pair(system, Decision.RESET_ALL)
    dispatch(child, "boom")
    await stopped(child)
    await eventually(lambda: "reset" in pb.events)
    assert await query(uncle, "get", 5) == 0
    assert alive(parent) and alive(uncle)


async def test_escalate_in_the_parent_goes_up_and_stops_both(system: ActorSystem) -> None:
    grand = Recorder(Decision.STOP_CHILD)
    grandparent = spawn_behaviour(system, grand, "grand")
    parent_behaviour = Recorder(Decision.ESCALATE)
    parent = spawn_behaviour(grandparent, parent_behaviour, "parent")
    child = spawn_behaviour(parent, Recorder(Decision.ESCALATE), "child")
    dispatch(child, "boom")
    await stopped(parent)
    assert not alive(child)
    assert alive(grandparent)
    [(msg, error)] = grand.crash_args
    assert isinstance(msg, Escalation) and msg.child is parent
    assert isinstance(msg.msg, Escalation) and msg.msg.child is child and msg.msg.msg == "boom"
    assert isinstance(error, Boom)


async def test_an_escalated_child_handles_nothing_until_the_parent_decides(
    system: ActorSystem,
) -> None:
    gate = asyncio.Event()

    class SlowParent(Recorder):
        async def receive(self, msg: object, ctx: Context) -> None:
            if msg == "block":
                self.busy = True
                await gate.wait()
                self.busy = False
                return
            await super().receive(msg, ctx)

    pb = SlowParent(Decision.RESET_CHILD)
    parent = spawn_behaviour(system, pb, "parent")
    cb = Recorder(Decision.ESCALATE)
    child = spawn_behaviour(parent, cb, "child")
    dispatch(parent, "block")
    await settle()
    for msg in ("boom", 1, 2):
        dispatch(child, msg)
    await settle(50)
    # Suspended: the parent is busy, so the escalation waits; the child handles nothing.
    assert cb.events == ["started", "msg:boom", "crash:boom"]
    assert pb.crash_args == []
    gate.set()
    assert await query(child, "get", 5) == 3
    assert cb.events[-5:] == ["reset", "started", "msg:1", "msg:2", "msg:get"]


async def test_stopping_a_suspended_child_ends_its_suspension(system: ActorSystem) -> None:
    gate = asyncio.Event()

    async def blocked(state: None, msg: Any, ctx: Context) -> None:
        await gate.wait()

    parent = spawn(system, blocked, "parent")
    dispatch(parent, "block")
    child = spawn(parent, counter, "child", initial_state=0,
                  on_crash=always(Decision.ESCALATE))
    dispatch(child, "boom")
    await settle()
    await stop(child)
    assert not alive(child)
    gate.set()
    await settle()
    assert alive(parent)


async def test_a_stopping_parent_stops_its_suspended_child(system: ActorSystem) -> None:
    gate = asyncio.Event()

    async def blocked(state: None, msg: Any, ctx: Context) -> None:
        await gate.wait()

    parent = spawn(system, blocked, "parent")
    dispatch(parent, "block")
    child = spawn(parent, counter, "child", initial_state=0,
                  on_crash=always(Decision.ESCALATE))
    dispatch(child, "boom")
    await settle()
    stopping = asyncio.ensure_future(stop(parent))
    await settle()
    gate.set()
    await stopping
    assert not alive(child)


async def test_several_children_escalating_at_once(system: ActorSystem) -> None:
    pb = Recorder(Decision.RESET_CHILD)
    parent = spawn_behaviour(system, pb, "parent")
    kids = [spawn(parent, counter, f"k{i}", initial_state=0,
                  on_crash=always(Decision.ESCALATE)) for i in range(5)]
    for kid in kids:
        dispatch(kid, 1)
        dispatch(kid, "boom")
        dispatch(kid, 2)
    for kid in kids:
        assert await query(kid, "get", 5) == 2
    assert len(pb.crash_args) == 5


async def test_query_to_a_suspended_child_then_stopped_fails_at_once(system: ActorSystem) -> None:
    _parent, _pb, child, cb = await escalating_pair(system, Decision.STOP_CHILD)
    gate = asyncio.Event()
    cb_receive = cb.receive

    async def gated(msg: object, ctx: Context) -> None:
        if msg == "boom":
            await gate.wait()
        await cb_receive(msg, ctx)

    cb.receive = gated  # type: ignore[method-assign]
    crash = asyncio.ensure_future(query(child, "boom", 1e9))
    pending = asyncio.ensure_future(query(child, "get", 1e9))
    await settle()
    gate.set()
    with pytest.raises(ActorCrashed):
        await crash
    with pytest.raises(ActorNotFound):
        await pending


async def test_reset_all_waits_for_a_busy_sibling_to_finish_its_message(
    system: ActorSystem,
) -> None:
    gate = asyncio.Event()

    class Blocking(Recorder):
        async def receive(self, msg: object, ctx: Context) -> None:
            if msg == "block":
                self.busy = True
                await gate.wait()
                self.events.append("unblocked")
                self.busy = False
                return
            await super().receive(msg, ctx)

    parent = spawn(system, counter, "parent", initial_state=0)
    sibling_behaviour = Blocking()
    sibling = spawn_behaviour(parent, sibling_behaviour, "sibling")
    faulty = spawn_behaviour(parent, Recorder(Decision.RESET_ALL), "faulty")
    dispatch(sibling, 5)
    dispatch(sibling, "block")
    dispatch(sibling, 7)
    await settle()
    dispatch(faulty, "boom")
    await settle(50)
    assert "reset" not in sibling_behaviour.events  # it is busy: the reset waits
    gate.set()
    assert await query(sibling, "get", 5) == 7
    await settle()
    assert sibling_behaviour.events[:5] == ["started", "msg:5", "unblocked", "reset", "started"]


async def test_resume_on_an_escalation_does_not_reenter_a_busy_parent(
    system: ActorSystem,
) -> None:
    gate = asyncio.Event()

    class SlowParent(Recorder):
        async def receive(self, msg: object, ctx: Context) -> None:
            if msg == "block":
                self.busy = True
                await gate.wait()
                self.events.append("unblocked")
                self.busy = False
                return
            await super().receive(msg, ctx)

    pb = SlowParent(Decision.RESUME)  # its on_crash asserts the parent is not busy
    parent = spawn_behaviour(system, pb, "parent")
    child = spawn_behaviour(parent, Recorder(Decision.ESCALATE), "child")
    dispatch(parent, "block")
    dispatch(parent, 1)
    await settle()
    dispatch(child, "boom")
    await settle(50)
    assert pb.crash_args == []
    gate.set()
    await stopped(child)
    assert await query(parent, "get", 5) == 1
    assert pb.events[:2] == ["started", "unblocked"]
    assert pb.events[2].startswith("crash:Escalation(child=<ActorRef test/parent/child>")
    assert pb.events[3:] == ["msg:1", "msg:get"]
