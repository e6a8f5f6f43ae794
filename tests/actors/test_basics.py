"""spawn, dispatch, query, ctx and the system's life cycle."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from actors import (
    ActorNotFound,
    ActorRef,
    ActorSystem,
    Behaviour,
    Context,
    DeadLetter,
    Decision,
    DuplicateActorName,
    InvalidActorName,
    QueryTimeout,
    SystemNotRunning,
    dispatch,
    query,
    spawn,
    spawn_behaviour,
    spawn_stateless,
    stop,
)
from tests.actors.conftest import eventually, settle


def adder(state: int, msg: Any, ctx: Context) -> int:
    if msg == "get":
        ctx.reply(state)
        return state
    return state + int(msg)


async def test_dispatch_then_query_sees_every_message_in_order(system: ActorSystem) -> None:
    seen: list[int] = []

    def record(state: None, msg: Any, ctx: Context) -> None:
        if msg == "done":
            ctx.reply(list(seen))
        else:
            seen.append(msg)

    ref = spawn(system, record, "recorder")
    for i in range(1000):
        dispatch(ref, i)
    assert await query(ref, "done", 5) == list(range(1000))


async def test_async_handler_and_initial_state_func(system: ActorSystem) -> None:
    async def handler(state: list[str], msg: Any, ctx: Context) -> list[str]:
        await asyncio.sleep(0)
        if msg == "get":
            ctx.reply(state)
            return state
        return [*state, msg]

    async def initial(ctx: Context) -> list[str]:
        return [ctx.name]

    ref = spawn(system, handler, "async", initial_state_func=initial)
    dispatch(ref, "a")
    dispatch(ref, "b")
    assert await query(ref, "get", 5) == ["async", "a", "b"]


async def test_query_with_a_factory_gets_the_reply_ref(system: ActorSystem) -> None:
    def handler(state: None, msg: Any, ctx: Context) -> None:
        kind, reply_to = msg
        assert reply_to is ctx.sender
        dispatch(reply_to, kind.upper())

    ref = spawn(system, handler, "factory")
    assert await query(ref, lambda reply: ("hello", reply), 5) == "HELLO"


async def test_context_exposes_the_actor(system: ActorSystem) -> None:
    captured: dict[str, Any] = {}

    def child_handler(state: None, msg: Any, ctx: Context) -> None:
        captured.update(self=ctx.self, parent=ctx.parent, name=ctx.name, path=ctx.path,
                        log=ctx.log.name, system=ctx.system, sender=ctx.sender)
        ctx.reply("ok")

    def parent_handler(state: ActorRef | None, msg: Any, ctx: Context) -> ActorRef | None:
        if msg == "spawn":
            child = spawn(ctx, child_handler, "bob")
            ctx.reply(child)
            return child
        if msg == "children":
            ctx.reply(dict(ctx.children))
        return state

    parent = spawn(system, parent_handler, "alice")
    child = await query(parent, "spawn", 5)
    assert await query(child, "hi", 5) == "ok"
    assert captured["self"] is child
    assert captured["parent"] is parent
    assert captured["name"] == "bob"
    assert captured["path"] == "test/alice/bob" == child.path
    assert captured["log"] == "actors.test.alice.bob"
    assert captured["system"] is system
    assert captured["sender"] is not None
    assert await query(parent, "children", 5) == {"bob": child}
    assert dict(system.children) == {"alice": parent}


async def test_children_mapping_is_read_only(system: ActorSystem) -> None:
    holder: dict[str, Any] = {}

    def handler(state: None, msg: Any, ctx: Context) -> None:
        holder["children"] = ctx.children
        ctx.reply(None)

    ref = spawn(system, handler, "ro")
    await query(ref, "x", 5)
    with pytest.raises(TypeError):
        holder["children"]["x"] = ref


async def test_top_level_parent_is_the_system(system: ActorSystem) -> None:
    def handler(state: None, msg: Any, ctx: Context) -> None:
        ctx.reply(ctx.parent)

    assert await query(spawn(system, handler), "x", 5) is system


@pytest.mark.parametrize("name", ["", "a/b", ".hidden", "-x", "x y", "é", "a" * 129, "$1"])
async def test_invalid_names_are_refused(system: ActorSystem, name: str) -> None:
    with pytest.raises(InvalidActorName, match="letters, digits"):
        spawn(system, adder, name)


async def test_valid_names(system: ActorSystem) -> None:
    for name in ["alice", "user-1", "a_b", "alice@example.com", "x:y+z=w~", "_", "a" * 128]:
        assert spawn(system, adder, name).path == f"test/{name}"


async def test_non_string_name_is_refused(system: ActorSystem) -> None:
    with pytest.raises(InvalidActorName, match="must be a str"):
        spawn(system, adder, 42)  # type: ignore[arg-type]


async def test_duplicate_name_is_refused_until_the_first_stops(system: ActorSystem) -> None:
    first = spawn(system, adder, "dup", initial_state=1)
    with pytest.raises(DuplicateActorName, match="dup"):
        spawn(system, adder, "dup")
    await stop(first)
    second = spawn(system, adder, "dup", initial_state=2)
    assert second is not first
    assert await query(second, "get", 5) == 2


async def test_generated_names_are_unique(system: ActorSystem) -> None:
    refs = [spawn(system, adder) for _ in range(5)]
    assert len({ref.name for ref in refs}) == 5
    assert all(ref.name.startswith("$") for ref in refs)


async def test_system_name_is_validated() -> None:
    with pytest.raises(InvalidActorName):
        ActorSystem("bad/name")


async def test_spawn_needs_a_running_system() -> None:
    system = ActorSystem("idle")
    with pytest.raises(SystemNotRunning):
        spawn(system, adder)
    async with system:
        spawn(system, adder)
    with pytest.raises(SystemNotRunning):
        spawn(system, adder)


async def test_leaving_the_system_stops_every_actor_children_first() -> None:
    order: list[str] = []

    def after_stop(state: None, ctx: Context) -> None:
        order.append(ctx.path)

    def parent_handler(state: None, msg: Any, ctx: Context) -> None:
        spawn(ctx, lambda s, m, c: s, "child", after_stop=after_stop)
        ctx.reply(None)

    async with ActorSystem("life") as system:
        ref = spawn(system, parent_handler, "parent", after_stop=after_stop)
        await query(ref, "spawn child", 5)
        assert system.metrics.live_actors == 2
    assert order == ["life/parent/child", "life/parent"]
    assert system.metrics.live_actors == 0
    with pytest.raises(ActorNotFound):
        await query(ref, "x", 5)


@pytest.mark.parametrize("timeout", [0, -1, float("inf"), float("nan"), None, "1", True])
async def test_query_timeout_is_validated(system: ActorSystem, timeout: Any) -> None:  # noqa: ASYNC109
    ref = spawn(system, adder)
    with pytest.raises(ValueError, match="query timeout"):
        await query(ref, "get", timeout)


async def test_query_times_out(system: ActorSystem) -> None:
    ref = spawn(system, lambda state, msg, ctx: state, "silent")
    with pytest.raises(QueryTimeout, match="silent"):
        await query(ref, "hello", 0.02)


async def test_huge_query_timeout_does_not_fire_at_once(system: ActorSystem) -> None:
    ref = spawn(system, adder, initial_state=3)
    assert await query(ref, "get", 1e12) == 3


async def test_query_to_a_stopped_actor_fails_at_once(system: ActorSystem) -> None:
    ref = spawn(system, adder)
    await stop(ref)
    # A huge timeout: the test would hang if the error were only raised on timeout.
    with pytest.raises(ActorNotFound, match="stopped"):
        await query(ref, "get", 1e9)


async def test_pending_queries_are_rejected_at_once_when_the_actor_stops(
    system: ActorSystem,
) -> None:
    gate = asyncio.Event()

    async def slow(state: None, msg: Any, ctx: Context) -> None:
        await gate.wait()

    ref = spawn(system, slow, "slow")
    first = asyncio.ensure_future(query(ref, "in handler", 1e9))
    second = asyncio.ensure_future(query(ref, "queued", 1e9))
    await settle()
    stopping = asyncio.ensure_future(stop(ref))
    await settle()
    gate.set()
    await stopping
    for pending in (first, second):
        with pytest.raises(ActorNotFound):
            await pending


async def test_stored_sender_is_rejected_when_the_actor_stops(system: ActorSystem) -> None:
    def keep(state: list[ActorRef], msg: Any, ctx: Context) -> list[ActorRef]:
        assert ctx.sender is not None
        return [*state, ctx.sender]

    ref = spawn(system, keep, "keeper", initial_state=[])
    waiting = asyncio.ensure_future(query(ref, "answer later", 1e9))
    await settle()
    await stop(ref)
    with pytest.raises(ActorNotFound):
        await waiting


async def test_dead_letters_are_counted_logged_and_hooked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    letters: list[DeadLetter] = []
    async with ActorSystem("dl", on_dead_letter=letters.append) as system:
        ref = spawn(system, adder, "gone")
        await stop(ref)
        with caplog.at_level(logging.DEBUG, logger="actors"):
            dispatch(ref, "lost", sender=None)
        assert system.metrics.dead_letters == 1
        assert letters == [DeadLetter(ref, "lost", None)]
        assert any("dead letter to dl/gone" in r.getMessage() and r.levelno == logging.DEBUG
                   for r in caplog.records)


async def test_a_failing_dead_letter_hook_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def hook(letter: DeadLetter) -> None:
        raise RuntimeError("hook broke")

    async with ActorSystem("dl2", on_dead_letter=hook) as system:
        ref = spawn(system, adder)
        await stop(ref)
        dispatch(ref, "lost")
        assert system.metrics.dead_letters == 1
    assert any("dead-letter hook" in r.getMessage() for r in caplog.records)


async def test_reply_without_sender_is_a_dead_letter(system: ActorSystem) -> None:
    letters: list[DeadLetter] = []
    system.on_dead_letter = letters.append
    ref = spawn(system, lambda state, msg, ctx: ctx.reply("to nobody"), "noreply")
    dispatch(ref, "x")
    await eventually(lambda: system.metrics.dead_letters == 1)
    assert [(letter.msg, letter.sender) for letter in letters] == [("to nobody", ref)]


async def test_late_reply_after_timeout_is_a_dead_letter(system: ActorSystem) -> None:
    release = asyncio.Event()

    async def late(state: None, msg: Any, ctx: Context) -> None:
        await release.wait()
        ctx.reply("too late")

    ref = spawn(system, late)
    with pytest.raises(QueryTimeout):
        await query(ref, "x", 0.02)
    release.set()
    await eventually(lambda: system.metrics.dead_letters == 1)


async def test_metrics_count_messages_and_actors(system: ActorSystem) -> None:
    ref = spawn(system, adder, initial_state=0)
    for _ in range(10):
        dispatch(ref, 1)
    assert await query(ref, "get", 5) == 10
    await eventually(lambda: system.metrics.messages_handled == 11)
    assert system.metrics.live_actors == 1
    await stop(ref)
    assert system.metrics.live_actors == 0


async def test_stateless_actor_replies(system: ActorSystem) -> None:
    async def echo(msg: Any, ctx: Context) -> None:
        ctx.reply(msg * 2)

    ref = spawn_stateless(system, echo, "echo")
    assert await query(ref, 21, 5) == 42


async def test_dispatch_and_query_refuse_non_refs(system: ActorSystem) -> None:
    with pytest.raises(TypeError):
        dispatch("nope", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await query("nope", 1, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await stop(system)  # type: ignore[arg-type]


async def test_a_context_subclass_built_from_the_runtime_context(system: ActorSystem) -> None:
    class ShoutingContext(Context):
        __slots__ = ("volume",)

        def shout(self, text: str) -> None:
            self.reply(text.upper() + "!" * self.volume)

    class Shouter(Behaviour):
        async def receive(self, msg: object, ctx: Context) -> None:
            loud = ShoutingContext.from_context(ctx)
            loud.volume = 2
            assert loud.sender is ctx.sender and loud.self is ctx.self
            loud.shout(str(msg))

        async def on_crash(self, msg: object, error: BaseException, ctx: Context) -> Decision:
            return Decision.STOP

    ref = spawn_behaviour(system, Shouter(), "shouter")
    assert await query(ref, "hi", 5) == "HI!!"


async def test_the_system_cannot_be_shut_down_from_inside_an_actor(system: ActorSystem) -> None:
    async def handler(state: None, msg: Any, ctx: Context) -> None:
        try:
            await ctx.system.shutdown()
        except RuntimeError as error:
            ctx.reply(str(error))

    ref = spawn(system, handler, "rebel")
    assert "cannot shut down its own system" in await query(ref, "x", 5)
