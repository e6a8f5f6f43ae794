"""reset_with_backoff and restart_budget, with an injected clock and sleep (no timing)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors import (
    ActorSystem,
    Context,
    Decision,
    dispatch,
    query,
    reset_with_backoff,
    restart_budget,
    spawn,
    stop,
)
from tests.actors.conftest import eventually, settle
from tests.actors.test_supervision import alive, counter, stopped


class FakeSleep:
    """Records each requested delay; returns at once, or when released if ``hold`` is set."""

    def __init__(self, hold: bool = False) -> None:
        self.delays: list[float] = []
        self.hold = hold
        self.release = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.hold:
            await self.release.wait()
            self.release.clear()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def crash(ref: Any, times: int) -> None:
    for _ in range(times):
        dispatch(ref, "boom")
    await query(ref, "get", 5)


async def test_backoff_delays_grow_exponentially_up_to_the_cap(system: ActorSystem) -> None:
    sleep = FakeSleep()
    policy = reset_with_backoff(base=0.1, factor=2.0, max_delay=0.5, jitter=0, sleep=sleep)
    ref = spawn(system, counter, initial_state=0, on_crash=policy)
    await crash(ref, 6)
    assert sleep.delays == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5, 0.5])
    assert alive(ref)


async def test_backoff_resets_and_keeps_the_mailbox_in_order_while_waiting(
    system: ActorSystem,
) -> None:
    sleep = FakeSleep(hold=True)
    seen: list[Any] = []

    def handler(state: int, msg: Any, ctx: Context) -> int:
        seen.append(msg)
        return counter(state, msg, ctx)

    ref = spawn(system, handler, initial_state=0,
                on_crash=reset_with_backoff(jitter=0, sleep=sleep))
    dispatch(ref, 5)
    dispatch(ref, "boom")
    for i in (1, 2, 3):
        dispatch(ref, i)
    await eventually(lambda: len(sleep.delays) == 1)
    await settle(50)
    assert seen == [5, "boom"]  # nothing handled while waiting
    sleep.release.set()
    assert await query(ref, "get", 5) == 6  # reset to 0, then 1 + 2 + 3
    assert seen == [5, "boom", 1, 2, 3, "get"]


async def test_backoff_jitter_spreads_within_bounds(system: ActorSystem) -> None:
    sleep = FakeSleep()
    draws = iter([0.0, 1.0, 0.5])
    policy = reset_with_backoff(base=1, factor=2, max_delay=3, jitter=0.25, sleep=sleep,
                                rand=lambda: next(draws))
    ref = spawn(system, counter, initial_state=0, on_crash=policy)
    await crash(ref, 3)
    # 1 * 0.75, then 2 * 1.25 = 2.5, then min(3, 4) = 3 with no spread (0.5 draws 0).
    assert sleep.delays == pytest.approx([0.75, 2.5, 3.0])


async def test_backoff_counter_restarts_after_a_calm_period(system: ActorSystem) -> None:
    sleep = FakeSleep()
    clock = FakeClock()
    policy = reset_with_backoff(base=1, factor=2, max_delay=100, jitter=0, reset_after=10,
                                sleep=sleep, clock=clock)
    ref = spawn(system, counter, initial_state=0, on_crash=policy)
    await crash(ref, 3)
    clock.now += 9
    await crash(ref, 1)
    clock.now += 10
    await crash(ref, 2)
    assert sleep.delays == [1, 2, 4, 8, 1, 2]


async def test_backoff_state_is_per_actor(system: ActorSystem) -> None:
    sleep = FakeSleep()
    policy = reset_with_backoff(base=1, factor=2, max_delay=100, jitter=0, sleep=sleep)
    first = spawn(system, counter, initial_state=0, on_crash=policy)
    second = spawn(system, counter, initial_state=0, on_crash=policy)
    await crash(first, 2)
    await crash(second, 1)
    assert sleep.delays == [1, 2, 1]


async def test_stopping_cuts_a_backoff_short(system: ActorSystem) -> None:
    policy = reset_with_backoff(base=1e6, max_delay=1e6)  # the real asyncio.sleep
    ref = spawn(system, counter, initial_state=0, on_crash=policy)
    dispatch(ref, "boom")
    dispatch(ref, 1)
    await settle()
    await asyncio.wait_for(stop(ref), 5)
    assert not alive(ref)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base": 0},
        {"base": -1},
        {"base": float("inf")},
        {"max_delay": float("nan")},
        {"base": 2, "max_delay": 1},
        {"factor": 0.5},
        {"jitter": -0.1},
        {"jitter": 1.5},
        {"reset_after": 0},
    ],
)
def test_backoff_settings_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        reset_with_backoff(**kwargs)


async def test_restart_budget_escalates_after_max_restarts_in_the_window(
    system: ActorSystem,
) -> None:
    clock = FakeClock()
    decisions: list[Decision] = []
    budget = restart_budget(2, window=60, clock=clock)

    async def on_crash(msg: object, error: BaseException, ctx: Context) -> Decision:
        decision = await budget(msg, error, ctx)
        decisions.append(decision)
        return decision

    ref = spawn(system, counter, "budgeted", initial_state=0, on_crash=on_crash)
    await crash(ref, 2)
    assert decisions == [Decision.RESET, Decision.RESET]
    dispatch(ref, "boom")
    await stopped(ref)  # escalated to the root, which stops it
    assert decisions[-1] is Decision.ESCALATE


async def test_restart_budget_window_slides(system: ActorSystem) -> None:
    clock = FakeClock()
    decisions: list[Decision] = []
    budget = restart_budget(2, window=60, clock=clock)

    async def on_crash(msg: object, error: BaseException, ctx: Context) -> Decision:
        decisions.append(await budget(msg, error, ctx))
        return decisions[-1]

    ref = spawn(system, counter, initial_state=0, on_crash=on_crash)
    await crash(ref, 2)
    clock.now += 61
    await crash(ref, 2)
    assert decisions == [Decision.RESET] * 4
    assert alive(ref)


async def test_restart_budget_wraps_an_inner_policy_and_skips_it_once_spent(
    system: ActorSystem,
) -> None:
    sleep = FakeSleep()
    inner = reset_with_backoff(base=1, factor=2, max_delay=100, jitter=0, sleep=sleep)
    ref = spawn(system, counter, initial_state=0,
                on_crash=restart_budget(3, window=1e6, inner=inner))
    await crash(ref, 3)
    dispatch(ref, "boom")
    await stopped(ref)
    assert sleep.delays == [1, 2, 4]  # the 4th fault escalates without waiting


async def test_a_zero_budget_escalates_at_once(system: ActorSystem) -> None:
    ref = spawn(system, counter, initial_state=0, on_crash=restart_budget(0, window=10))
    dispatch(ref, "boom")
    await stopped(ref)
    assert system.metrics.escalations == 1  # escalated (to the root, which stops it)
    assert system.metrics.resets == 0


async def test_restart_budget_lets_non_reset_decisions_through_for_free(
    system: ActorSystem,
) -> None:
    ref = spawn(system, counter, initial_state=7,
                on_crash=restart_budget(1, window=1e6, inner=lambda m, e, c: Decision.RESUME))
    dispatch(ref, 3)  # away from the initial state: a RESET would bring back 7
    await crash(ref, 5)
    assert await query(ref, "get", 5) == 10
    assert alive(ref)
    assert system.metrics.resets == 0 and system.metrics.escalations == 0


@pytest.mark.parametrize("args", [(-1, 10), (1.5, 10), (True, 10), (1, 0), (1, float("inf"))])
def test_restart_budget_settings_are_validated(args: tuple[Any, Any]) -> None:
    with pytest.raises(ValueError):
        restart_budget(*args)
