"""Durable-state actors: get/set/delete with revisions, TTL expiry, stale revisions never win."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors import ActorCrashed, ActorSystem, DurableStateActor, query, spawn_actor
from actors.durable_state import DurableStateContext
from persistence import InMemoryEngine
from persistence.errors import StateRevisionConflict

T = 5.0


class Profile(DurableStateActor[dict[str, Any]]):
    """("set", value[, ttl]) / ("delete",) / ("get",) / ("try-set", value) catching conflicts."""

    def __init__(self, key: str = "profile/alice") -> None:
        self.key = key
        self.loaded: list[Any] = []

    def on_state_loaded(self, value: dict[str, Any] | None) -> None:
        self.loaded.append(value)

    async def on_command(self, command: Any, ctx: DurableStateContext[dict[str, Any]]) -> None:
        match command:
            case ("get",):
                ctx.reply((ctx.get_state(), ctx.revision))
            case ("set", value):
                ctx.reply(await ctx.set_state(value))
            case ("set", value, ttl):
                ctx.reply(await ctx.set_state(value, ttl=ttl))
            case ("delete",):
                ctx.reply(await ctx.delete_state())
            case ("try-set", value):
                try:
                    await ctx.set_state(value)
                except StateRevisionConflict as exc:
                    ctx.reply(("conflict", exc.actual_revision, ctx.get_state(), ctx.revision))
                else:
                    ctx.reply(("ok", ctx.revision))


async def test_set_get_delete_with_revisions_survive_a_restart() -> None:
    engine = InMemoryEngine()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, Profile(), "alice")
        assert await query(ref, ("get",), T) == (None, 0)
        assert await query(ref, ("set", {"name": "Alice"}), T) == 1
        assert await query(ref, ("set", {"name": "Alice L."}), T) == 2
        assert await query(ref, ("get",), T) == ({"name": "Alice L."}, 2)
    actor = Profile()
    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, actor, "alice")
        assert await query(ref, ("get",), T) == ({"name": "Alice L."}, 2)
        assert actor.loaded == [{"name": "Alice L."}]
        assert await query(ref, ("delete",), T) is True
        assert await query(ref, ("get",), T) == (None, 0)
        assert await query(ref, ("delete",), T) is False
        assert await query(ref, ("set", {"name": "again"}), T) == 3  # revisions never reused
    stored = await engine.get_state("profile/alice")
    assert stored is not None and (stored.revision, stored.value) == (3, {"name": "again"})


async def test_expired_state_reads_as_absent() -> None:
    """No timed assert: a long TTL is alive, a short one is waited out (bounded) by polling."""
    engine = InMemoryEngine()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, Profile(), "alice")
        assert await query(ref, ("set", {"v": 1}, 3600), T) == 1
        assert await query(ref, ("get",), T) == ({"v": 1}, 1)
        assert await query(ref, ("set", {"v": 2}, 0.01), T) == 2
        for _ in range(3_000):
            if await query(ref, ("get",), T) == (None, 0):
                break
            await asyncio.sleep(0.01)
        assert await query(ref, ("get",), T) == (None, 0)
        assert await query(ref, ("set", {"v": 3}), T) == 3  # over the expired value
    async with ActorSystem("b", engine=engine) as system:
        ref = spawn_actor(system, Profile(), "alice")
        assert await query(ref, ("get",), T) == ({"v": 3}, 3)


async def test_a_stale_revision_reloads_and_reports_never_overwrites() -> None:
    engine = InMemoryEngine()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, Profile(), "alice")
        await query(ref, ("set", {"by": "actor"}), T)
        await engine.upsert_state("profile/alice", {"by": "other writer"}, 1)
        assert await query(ref, ("try-set", {"by": "actor again"}), T) == (
            "conflict", 2, {"by": "other writer"}, 2
        )
        stored = await engine.get_state("profile/alice")
        assert stored is not None and stored.value == {"by": "other writer"}
        assert await query(ref, ("try-set", {"by": "actor, informed"}), T) == ("ok", 3)


async def test_an_uncaught_conflict_reaches_the_caller_and_the_actor_goes_on() -> None:
    engine = InMemoryEngine()
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, Profile(), "alice")
        await query(ref, ("set", {"n": 1}), T)
        await engine.delete_state("profile/alice")
        await engine.upsert_state("profile/alice", {"n": "theirs"}, 0)
        with pytest.raises(ActorCrashed) as info:
            await query(ref, ("delete",), T)
        assert isinstance(info.value.error, StateRevisionConflict)
        assert await query(ref, ("get",), T) == ({"n": "theirs"}, 2)


def test_a_missing_key_is_rejected_at_spawn() -> None:
    with pytest.raises(ValueError, match="key must be a non-empty string"):
        spawn_actor(object(), Profile(key=""))
