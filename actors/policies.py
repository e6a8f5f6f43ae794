"""Ready-made ``on_crash`` policies: a delayed exponential reset and a restart budget.

Each policy keeps its bookkeeping per actor (per ref), so one policy object can be given to
many actors. Clocks, sleep and randomness can be injected, which keeps tests free of timing.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable

from actors.context import Context
from actors.ref import ActorRef
from actors.supervision import Decision, OnCrash
from actors.validation import validate_duration

Sleep = Callable[[float], Awaitable[object]]
Policy = Callable[[object, BaseException, Context], Awaitable[Decision]]

_RESETS = frozenset({Decision.RESET, Decision.RESET_ALL})


class _Backoff:
    __slots__ = ("attempt", "restarted_at")

    def __init__(self) -> None:
        self.attempt = 0
        self.restarted_at = 0.0


def reset_with_backoff(base: float = 0.1, factor: float = 2.0, max_delay: float = 30.0,
                       jitter: float = 0.1, *, reset_after: float | None = None,
                       sleep: Sleep = asyncio.sleep, rand: Callable[[], float] = random.random,
                       clock: Callable[[], float] = time.monotonic) -> Policy:
    """RESET after a delay of ``base * factor**n`` seconds (capped at ``max_delay``).

    ``n`` counts the consecutive faults of the actor; it goes back to 0 once the actor has
    run ``reset_after`` seconds (default ``max_delay``) since its last reset without a fault.
    ``jitter`` spreads each delay uniformly by up to that fraction either way (0.1: +-10%),
    never beyond ``max_delay``. While the delay runs the actor handles nothing and its
    mailbox keeps its messages, in order; stopping the actor cuts the delay short.
    """
    base = validate_duration(base, "backoff base")
    max_delay = validate_duration(max_delay, "backoff max_delay")
    if max_delay < base:
        raise ValueError(f"backoff max_delay ({max_delay}) must be at least base ({base})")
    factor = validate_duration(factor, "backoff factor")
    if factor < 1:
        raise ValueError(f"backoff factor must be at least 1, got {factor}")
    if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not 0 <= jitter <= 1:
        raise ValueError(f"backoff jitter must be a fraction within 0..1, got {jitter!r}")
    calm = max_delay if reset_after is None else validate_duration(reset_after, "reset_after")
    states: weakref.WeakKeyDictionary[ActorRef, _Backoff] = weakref.WeakKeyDictionary()

    async def on_crash(msg: object, error: BaseException, ctx: Context) -> Decision:
        state = states.get(ctx.self)
        if state is None:
            state = states[ctx.self] = _Backoff()
        elif clock() - state.restarted_at >= calm:
            state.attempt = 0
        delay = min(max_delay, base * factor**state.attempt)
        if delay < max_delay:
            state.attempt += 1
        delay = min(max_delay, delay * (1 + jitter * (2 * rand() - 1)))
        ctx.log.info("actor %s resets in %.3fs (backoff)", ctx.path, delay)
        await sleep(delay)
        state.restarted_at = clock()
        return Decision.RESET

    return on_crash


def _always_reset(msg: object, error: BaseException, ctx: Context) -> Decision:
    return Decision.RESET


def restart_budget(max_restarts: int, window: float, inner: OnCrash = _always_reset, *,
                   clock: Callable[[], float] = time.monotonic) -> Policy:
    """Let ``inner`` decide (RESET by default), but allow at most ``max_restarts`` resets
    within ``window`` seconds; a fault beyond that budget is escalated to the parent.

    Only RESET and RESET_ALL decisions of ``inner`` spend the budget. Once it is spent,
    ``inner`` is not even asked (so a backoff does not wait before escalating).
    """
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
        raise ValueError(f"max_restarts must be an int >= 0, got {max_restarts!r}")
    window = validate_duration(window, "restart budget window")
    if not callable(inner):
        raise TypeError(f"inner must be an on_crash callable, got {inner!r}")
    history: weakref.WeakKeyDictionary[ActorRef, deque[float]] = weakref.WeakKeyDictionary()

    async def on_crash(msg: object, error: BaseException, ctx: Context) -> Decision:
        now = clock()
        resets = history.get(ctx.self)
        if resets is None:
            resets = history[ctx.self] = deque()
        while resets and resets[0] <= now - window:
            resets.popleft()
        if len(resets) >= max_restarts:
            ctx.log.warning("actor %s spent its budget of %d resets in %gs: escalating",
                            ctx.path, max_restarts, window)
            return Decision.ESCALATE
        decision = inner(msg, error, ctx)
        if inspect.isawaitable(decision):
            decision = await decision
        if decision in _RESETS:
            resets.append(now)
        return decision

    return on_crash
