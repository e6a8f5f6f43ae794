"""A caller's crash never leaves a hang: ``asyncio.run`` returns whatever was in flight.

``asyncio.run`` cancels every task when its coroutine ends. Each test ends its coroutine
(by raising, as a crashing script does) without closing the actor system, with work at some
await point of the persist or recovery path, or inside code that swallows the cancellation,
and checks that ``asyncio.run`` came back. A hang would be stopped by pytest-timeout; the
runs are bounded in count.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors import ActorSystem, dispatch, spawn, spawn_actor
from persistence import InMemoryEngine
from tests.actors.batching_support import CallerCrashed, Tally


def run_and_crash(main: Any) -> None:
    with pytest.raises(CallerCrashed):
        asyncio.run(main())


@pytest.mark.parametrize("turns", range(0, 40, 3))
def test_cancellation_at_any_point_of_persist_and_recovery_returns(turns: int) -> None:
    """Twenty actors recover (a journal written beforehand) and persist while the caller
    crashes after ``turns`` event-loop turns: every await point of both paths is hit by
    some value of ``turns``."""
    engine = InMemoryEngine()

    async def seed() -> None:
        async with ActorSystem("seed", engine=engine) as system:
            refs = [spawn_actor(system, Tally(f"t{i}")) for i in range(20)]
            for ref in refs:
                dispatch(ref, 1)

    asyncio.run(seed())

    async def main() -> None:
        system = ActorSystem("crash", engine=engine)
        await system.__aenter__()
        refs = [spawn_actor(system, Tally(f"t{i}")) for i in range(20)]
        for n, ref in enumerate(refs):
            for _ in range(3):
                dispatch(ref, n)
        for _ in range(turns):
            await asyncio.sleep(0)
        raise CallerCrashed

    run_and_crash(main)


def test_a_handler_that_swallows_the_cancellation_still_lets_asyncio_run_return() -> None:
    """Code an actor runs may catch ``CancelledError`` and go on (psycopg_pool's workers do);
    the actor's task still ends, at the latest once its mailbox is empty (the drain loop does
    not pay a check per message for it)."""
    started = asyncio.Event()

    async def stubborn(state: Any, msg: Any, ctx: Any) -> Any:
        if msg != "wait":
            return state
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return state  # swallowed: the handler returns as if nothing happened
        return state

    async def main() -> None:
        system = ActorSystem("stubborn")
        await system.__aenter__()
        ref = spawn(system, stubborn)
        dispatch(ref, "wait")
        dispatch(ref, "then this")
        await started.wait()
        raise CallerCrashed

    run_and_crash(main)


def test_a_start_failing_again_and_again_does_not_outlive_its_cancellation() -> None:
    """A persistent actor whose recovery keeps failing (its engine gone) is reset again and
    again by a backoff policy; the shutdown's cancellation ends that loop."""
    from actors import reset_with_backoff

    class Broken(Tally):
        def on_crash(self, msg: object, error: BaseException, ctx: Any) -> Any:
            return reset_with_backoff(initial=0.001, maximum=0.002)(msg, error, ctx)

    class Gone(InMemoryEngine):
        async def highest_sequence_nr(self, persistence_id: str) -> int:
            await asyncio.sleep(0)
            raise ConnectionError("the engine is gone")

    async def main() -> None:
        system = ActorSystem("broken", engine=Gone())
        await system.__aenter__()
        ref = spawn_actor(system, Broken("b"))
        dispatch(ref, 1)
        await asyncio.sleep(0.05)
        raise CallerCrashed

    run_and_crash(main)
