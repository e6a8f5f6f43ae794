"""The nact-style functional API: spawn_persistent with ctx.persist and ctx.recovering."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from actors import (
    ActorCrashed,
    ActorNotFound,
    ActorSystem,
    Decision,
    PersistentContext,
    Upcasters,
    query,
    spawn_persistent,
)
from actors.upcasting import DataclassEvents, JsonEvents
from persistence import InMemoryEngine, NewEvent
from persistence.errors import ConcurrencyConflict, JournalIntegrityError

T = 5.0


def _contacts_handler(log: list[tuple[bool, Any]]) -> Any:
    async def handler(
        state: dict[str, Any], msg: Any, ctx: PersistentContext[Any]
    ) -> dict[str, Any]:
        log.append((ctx.recovering, msg))
        if msg["type"] == "get":
            ctx.reply({"state": state, "seq": ctx.sequence_nr})
            return state
        if not ctx.recovering:
            await ctx.persist(msg)
        if msg["type"] == "add":
            state = {**state, msg["id"]: msg["name"]}
        elif msg["type"] == "remove":
            state = {k: v for k, v in state.items() if k != msg["id"]}
        if not ctx.recovering:
            ctx.reply(state)
        return state

    return handler


async def test_messages_are_persisted_and_replayed_through_the_handler() -> None:
    engine = InMemoryEngine()
    log: list[tuple[bool, Any]] = []
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_persistent(system, _contacts_handler(log), "user-1", "user-1", initial_state={})
        await query(ref, {"type": "add", "id": "c1", "name": "Ada"}, T)
        await query(ref, {"type": "add", "id": "c2", "name": "Grace"}, T)
        assert await query(ref, {"type": "remove", "id": "c1"}, T) == {"c2": "Grace"}
    stored = [(e.type, e.version) async for e in engine.replay("user-1")]
    assert stored == [("add", 1), ("add", 1), ("remove", 1)]

    log.clear()
    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_persistent(system, _contacts_handler(log), "user-1", "user-1", initial_state={})
        assert await query(ref, {"type": "get"}, T) == {"state": {"c2": "Grace"}, "seq": 3}
    assert [recovering for recovering, _ in log] == [True, True, True, False]


async def test_persist_during_recovery_is_refused() -> None:
    engine = InMemoryEngine()
    await engine.append("p", [NewEvent("message", 1)], 0)
    errors: list[BaseException] = []

    async def careless(state: int, msg: Any, ctx: PersistentContext[Any]) -> int:
        await ctx.persist(msg)
        ctx.reply(state + 1)
        return state + 1

    def on_crash(msg: object, error: BaseException, ctx: PersistentContext[Any]) -> None:
        errors.append(error)

    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_persistent(system, careless, "p", initial_state=0, on_crash=on_crash)
        with pytest.raises(Exception):  # noqa: B017 - stopped after the failed recovery
            await query(ref, 5, T)
    assert isinstance(errors[0], RuntimeError)
    assert "during recovery" in str(errors[0])


async def test_snapshot_every_snapshots_the_returned_state() -> None:
    engine = InMemoryEngine()

    def handler(state: int, msg: Any, ctx: PersistentContext[Any]) -> Any:
        async def run() -> int:
            if not ctx.recovering:
                await ctx.persist(msg)
                ctx.reply(state + msg)
            return state + int(msg)

        return run()

    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_persistent(system, handler, "sum", initial_state=0, snapshot_every=2)
        for n in (1, 2, 3):
            await query(ref, n, T)
    snapshot = await engine.load_snapshot("sum")
    assert snapshot is not None
    assert (snapshot.sequence_nr, snapshot.payload["state"]) == (2, 3)

    seen: list[Any] = []

    def counting(state: int, msg: Any, ctx: PersistentContext[Any]) -> int:
        seen.append(msg)
        if msg == "get":
            ctx.reply(state)
            return state
        return state + int(msg)

    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_persistent(system, counting, "sum", initial_state=0, snapshot_every=2)
        assert await query(ref, "get", T) == 6
    assert seen == [3, "get"]  # from the snapshot at 2: only event 3 replayed


async def test_json_events_are_upcast_on_replay() -> None:
    engine = InMemoryEngine()
    await engine.append("p", [NewEvent("add", {"type": "add", "n": 2}, version=1)], 0)
    upcasters = Upcasters().add("add", 1, lambda p: {"type": "add", "amount": p["n"]})

    def handler(state: int, msg: Any, ctx: PersistentContext[Any]) -> Any:
        async def run() -> int:
            if msg == "get":
                ctx.reply(state)
                return state
            if not ctx.recovering:
                await ctx.persist(msg)
                ctx.reply("ok")
            return state + int(msg["amount"])

        return run()

    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_persistent(
            system, handler, "p", initial_state=0, events=JsonEvents(upcasters)
        )
        await query(ref, {"type": "add", "amount": 5}, T)
        assert await query(ref, "get", T) == 7
    assert [e.version async for e in engine.replay("p")] == [1, 2]


async def test_an_event_version_without_upcaster_path_fails_recovery() -> None:
    engine = InMemoryEngine()
    events = DataclassEvents()

    @events.register("Added", version=3)
    @dataclass(frozen=True)
    class Added:
        n: int

    events.upcasters.add("Added", 2, lambda p: p)
    await engine.append("p", [NewEvent("Added", {"n": 1}, version=1)], 0)
    errors: list[BaseException] = []

    def on_crash(msg: object, error: BaseException, ctx: PersistentContext[Any]) -> None:
        errors.append(error)

    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_persistent(
            system, lambda s, m, c: s, "p", initial_state=0, events=events, on_crash=on_crash
        )
        with pytest.raises(Exception):  # noqa: B017 - the actor stopped
            await query(ref, "x", T)
    [error] = errors
    assert isinstance(error, JournalIntegrityError)
    assert "event #1 of 'p'" in str(error)
    assert "no upcaster turns 'Added' version 1 into version 2" in str(error)


async def test_a_handler_failing_after_persist_recovers_before_the_next_message() -> None:
    engine = InMemoryEngine()

    async def handler(state: list[Any], msg: Any, ctx: PersistentContext[Any]) -> list[Any]:
        if msg == "get":
            ctx.reply(state)
            return state
        if not ctx.recovering:
            await ctx.persist(msg)
            if msg == "boom":
                raise ValueError("after persist")
        return [*state, msg]

    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_persistent(system, handler, "p", initial_state=[])
        with pytest.raises(ActorCrashed):
            await query(ref, "boom", T)
        assert await query(ref, "get", T) == ["boom"]  # durable, so it is in the state


async def test_replies_during_a_replay_never_reach_the_current_caller() -> None:
    engine = InMemoryEngine()

    async def chatty(state: int, msg: Any, ctx: PersistentContext[Any]) -> int:
        if msg != "get" and not ctx.recovering:
            await ctx.persist(msg)
        ctx.reply(("seen", msg, ctx.recovering))  # unguarded, as nact examples do
        return state if msg == "get" else state + int(msg)

    def resume(msg: object, error: BaseException, ctx: PersistentContext[Any]) -> Decision:
        return Decision.RESUME

    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_persistent(system, chatty, "p", initial_state=0, on_crash=resume)
        await query(ref, 1, T)
        await engine.append("p", [NewEvent("message", 10)], 1)  # behind the actor's back
        with pytest.raises(ActorCrashed) as info:
            await query(ref, 2, T)
        assert isinstance(info.value.error, ConcurrencyConflict)
        # the next message first recovers (replaying 1 and 10), then is handled
        assert await query(ref, "get", T) == ("seen", "get", False)
        assert await query(ref, 5, T) == ("seen", 5, False)
    assert [e.payload async for e in engine.replay("p")] == [1, 10, 5]


async def test_a_passivated_actor_recovers_when_spawned_again() -> None:
    engine = InMemoryEngine()

    async def handler(state: list[Any], msg: Any, ctx: PersistentContext[Any]) -> list[Any]:
        if msg == "get":
            ctx.reply(state)
            return state
        if not ctx.recovering:
            await ctx.persist(msg)
            ctx.reply("ok")
        return [*state, msg]

    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_persistent(system, handler, "p", "p", initial_state=[], shutdown_after=0.02)
        await query(ref, "x", T)
        await query(ref, "y", T)
        for _ in range(500):
            if "p" not in system.children:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(ActorNotFound):
            await query(ref, "get", T)
        again = spawn_persistent(system, handler, "p", "p", initial_state=[])
        assert await query(again, "get", T) == ["x", "y"]
