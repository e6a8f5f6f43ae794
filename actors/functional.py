"""The behaviours behind ``spawn`` (a state-reducing handler) and ``spawn_stateless``."""

from __future__ import annotations

import asyncio
import copy
import inspect
from collections.abc import Callable
from types import CoroutineType
from typing import Any, TypeAlias

from actors.behaviour import Behaviour
from actors.context import Context
from actors.supervision import Decision, OnCrash

Handler: TypeAlias = Callable[[Any, Any, Context], Any]
"""``(state, msg, ctx) -> new state``, sync or async."""
StatelessHandler: TypeAlias = Callable[[Any, Context], Any]
"""``(msg, ctx) -> None``, sync or async."""
AfterStop: TypeAlias = Callable[[Any, Context], Any]
"""``(state, ctx) -> None``, sync or async; ``ctx.unprocessed`` holds the unprocessed mailbox."""
InitialStateFunc: TypeAlias = Callable[[Context], Any]
"""``(ctx) -> initial state``, sync or async; runs at start and after every reset."""


def _is_async(func: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
        getattr(func, "__call__", None)  # noqa: B004 - a callable object's async __call__
    )


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def _decide(on_crash: OnCrash | None, msg: object, error: BaseException,
                  ctx: Context) -> Decision:
    if on_crash is None:
        return Decision.STOP
    outcome = on_crash(msg, error, ctx)
    if inspect.isawaitable(outcome):
        return await outcome
    return outcome


class FunctionalBehaviour(Behaviour):
    """A stateful actor: each message maps the current state to the next one.

    ``initial_state`` is deep-copied at spawn and again at each start, so a handler that
    mutates its state in place still finds the pristine initial state after a reset.
    """

    def __init__(self, handler: Handler, *, initial_state: Any = None,
                 initial_state_func: InitialStateFunc | None = None,
                 on_crash: OnCrash | None = None, after_stop: AfterStop | None = None) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        if initial_state is not None and initial_state_func is not None:
            raise ValueError("give initial_state or initial_state_func, not both")
        for label, func in (("initial_state_func", initial_state_func),
                            ("on_crash", on_crash), ("after_stop", after_stop)):
            if func is not None and not callable(func):
                raise TypeError(f"{label} must be callable, got {func!r}")
        try:
            self._initial = copy.deepcopy(initial_state)
        except Exception as error:
            raise TypeError(
                f"initial_state cannot be copied ({error!r}); use initial_state_func instead"
            ) from error
        self._handler = handler
        self._async = _is_async(handler)
        self._initial_state_func = initial_state_func
        self._on_crash = on_crash
        self._after_stop = after_stop
        self.state: Any = None

    async def started(self, ctx: Context) -> None:
        if self._initial_state_func is not None:
            self.state = await _maybe_await(self._initial_state_func(ctx))
        else:
            self.state = copy.deepcopy(self._initial)

    async def receive(self, msg: object, ctx: Context) -> None:
        if self._async:
            self.state = await self._handler(self.state, msg, ctx)
            return
        state = self._handler(self.state, msg, ctx)
        if type(state) is CoroutineType:
            state = await state
        self.state = state

    def reset(self) -> None:
        self.state = None

    async def stopped(self, ctx: Context, unprocessed: list[object]) -> None:
        if self._after_stop is not None:
            await _maybe_await(self._after_stop(self.state, ctx))

    async def on_crash(self, msg: object, error: BaseException, ctx: Context) -> Decision:
        return await _decide(self._on_crash, msg, error, ctx)


class StatelessBehaviour(Behaviour):
    """A stateless actor: up to ``max_concurrency`` messages handled at once.

    With ``max_concurrency`` 1 it is an ordinary actor. With more, each message runs in its
    own task once a slot is free (the mailbox waits meanwhile, so messages start in arrival
    order); a fault is supervised as soon as the cell is between two messages, and the
    given ``on_crash`` decides (nact forces resume; here it is honoured). A reset stops the
    children and runs ``started`` again but lets the other handlers in flight finish;
    stopping waits for them.
    """

    def __init__(self, handler: StatelessHandler, *, max_concurrency: int = 1,
                 on_crash: OnCrash | None = None) -> None:
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        if on_crash is not None and not callable(on_crash):
            raise TypeError(f"on_crash must be callable, got {on_crash!r}")
        if (isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int)
                or max_concurrency < 1):
            raise ValueError(f"max_concurrency must be an int >= 1, got {max_concurrency!r}")
        self._handler = handler
        self._on_crash = on_crash
        self.max_concurrency = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()

    async def receive(self, msg: object, ctx: Context) -> None:
        if self.max_concurrency == 1:
            await _maybe_await(self._handler(msg, ctx))
            return
        await self._slots.acquire()
        task = asyncio.get_running_loop().create_task(self._run(msg, ctx.with_sender(ctx.sender)))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _run(self, msg: object, ctx: Context) -> None:
        try:
            await _maybe_await(self._handler(msg, ctx))
        except Exception as error:
            ctx._cell.report_fault(msg, ctx.sender, error)
        finally:
            self._slots.release()

    async def stopped(self, ctx: Context, unprocessed: list[object]) -> None:
        if self._in_flight:
            await asyncio.wait(list(self._in_flight))

    async def on_crash(self, msg: object, error: BaseException, ctx: Context) -> Decision:
        return await _decide(self._on_crash, msg, error, ctx)


