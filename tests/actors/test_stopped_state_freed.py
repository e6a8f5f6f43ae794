"""A stopped actor's state is garbage, even while someone still holds its ref (issue 10).

A ref outlives its actor by design (messages to it become dead letters), and whoever cached
it (a router's client, a map of users to refs) may keep it a while: the ref must not keep
the stopped actor's behaviour, and so its state, reachable."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from actors import ActorSystem, Context, spawn, spawn_persistent, stop
from actors.persistent_context import PersistentContext
from persistence import InMemoryEngine
from tests.actors.conftest import eventually


class Box:
    """A state object a weak reference can watch."""

    items: list[int]

    def __init__(self) -> None:
        self.items = list(range(1000))


def give_state(state: Box, msg: Any, ctx: Context) -> Box:
    ctx.reply(state)
    return state


async def give_persistent_state(state: Box, msg: Any, ctx: PersistentContext[Box]) -> None:
    ctx.reply(state)


async def _watched_state(ref: Any) -> weakref.ref[Box]:
    from actors import query

    state = await query(ref, "state?", 5)
    assert isinstance(state, Box)
    return weakref.ref(state)


@pytest.mark.parametrize("how", ["passivated", "stopped"])
async def test_a_stopped_actor_s_state_is_freed_while_its_ref_lives(how: str) -> None:
    async with ActorSystem("freed") as system:
        ref = spawn(system, give_state, "holder", initial_state_func=lambda *_: Box(),
                    shutdown_after=0.05 if how == "passivated" else None)
        watched = await _watched_state(ref)
        if how == "stopped":
            await stop(ref)
        await eventually(lambda: system.metrics.live_actors == 0)
        gc.collect()
        assert watched() is None
        assert ref is not None  # the ref itself is still held here


@pytest.mark.parametrize("how", ["passivated", "stopped"])
async def test_a_stopped_persistent_actor_s_state_is_freed_while_its_ref_lives(
    how: str,
) -> None:
    async with ActorSystem("freed", engine=InMemoryEngine()) as system:
        ref = spawn_persistent(system, give_persistent_state, "box-1", "holder",
                               initial_state_func=lambda *_: Box(),
                               shutdown_after=0.05 if how == "passivated" else None)
        watched = await _watched_state(ref)
        if how == "stopped":
            await stop(ref)
        await eventually(lambda: system.metrics.live_actors == 0)
        gc.collect()
        assert watched() is None
        assert ref is not None
