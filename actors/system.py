"""The actor system and the functions that work on actors: spawn, dispatch, query, stop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeAlias

from actors.behaviour import Behaviour
from actors.cell import Cell, current_cell
from actors.context import Context
from actors.deadlines import QueryDeadlines
from actors.errors import ActivationLost, ActorNotFound, ShutdownFromInside, SystemNotRunning
from actors.functional import (
    AfterStop,
    FunctionalBehaviour,
    Handler,
    InitialStateFunc,
    StatelessBehaviour,
    StatelessHandler,
)
from actors.metrics import Metrics
from actors.placement import NOT_SERVING, Activation, Placement, refuse
from actors.ref import ActorRef, CellRef, ReplyRef
from actors.snapshots import DEFAULT_DRAIN_TIMEOUT, SnapshotTasks
from actors.supervision import OnCrash
from actors.tree import Node, RootNode
from actors.validation import validate_duration, validate_name

if TYPE_CHECKING:
    from collections.abc import Mapping

    from persistence import Engine

_log = logging.getLogger("actors")
_INFINITY = float("inf")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that no actor will handle: its target is stopped, or it had no sender."""

    recipient: ActorRef | None
    msg: object
    sender: ActorRef | None


class ActorSystem:
    """A tree of actors, run with ``async with ActorSystem("contacts") as system:``.

    The system is the parent of the top-level actors. Leaving the ``async with`` block stops
    every actor (children first) and waits for them, then for the snapshots its persistent
    actors save in the background (at most ``snapshot_drain_timeout`` seconds, then they are
    cancelled). ``on_dead_letter`` (also settable as an attribute) is called with each
    :class:`DeadLetter`, after it was counted and logged at DEBUG level on the ``actors``
    logger.

    ``placement`` (an :class:`~actors.placement.Placement`) runs the persistent actors as
    activations of a cluster: each holds its lease while it runs, every write is fenced,
    and the system asks ``placement.serving()`` every ``placement_check_interval`` seconds,
    stopping every activation once it is False (``actors/placement.py``). ``None``: one
    process, no leases.
    """

    def __init__(self, name: str = "system", *, engine: Engine | None = None,
                 placement: Placement | None = None,
                 on_dead_letter: Callable[[DeadLetter], None] | None = None,
                 snapshot_drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
                 placement_check_interval: float = 0.1) -> None:
        self.name = validate_name(name, "system name")
        self.engine = engine
        self.placement = placement
        self.placement_check_interval = validate_duration(
            placement_check_interval, "placement_check_interval"
        )
        self.activations: dict[Cell, Activation] = {}
        """The persistent actors holding their lease, with it (empty without placement)."""
        self._watchdog: asyncio.Task[None] | None = None
        self.snapshots = SnapshotTasks()
        """The background snapshots in flight (see ``actors/snapshots.py``)."""
        self.snapshot_drain_timeout = validate_duration(
            snapshot_drain_timeout, "snapshot_drain_timeout"
        )
        self.metrics = Metrics()
        self.on_dead_letter = on_dead_letter
        self.log = logging.getLogger("actors." + self.name)
        self._root = RootNode(self)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: QueryDeadlines | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "running" if self.running else ("stopped" if self._closed else "not started")
        return f"<ActorSystem {self.name} {state}>"

    @property
    def path(self) -> str:
        return self.name

    @property
    def running(self) -> bool:
        return self._loop is not None and not self._closed

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise SystemNotRunning(f"actor system {self.name!r} is not started: use async with")
        return self._loop

    @property
    def deadlines(self) -> QueryDeadlines:
        if self._deadlines is None:
            raise SystemNotRunning(f"actor system {self.name!r} is not started: use async with")
        return self._deadlines

    @property
    def children(self) -> Mapping[str, ActorRef]:
        """The live top-level actors by name (read-only)."""
        return self._root.children_view

    async def __aenter__(self) -> Self:
        if self._loop is not None:
            raise SystemNotRunning(f"actor system {self.name!r} can only be started once")
        self._loop = asyncio.get_running_loop()
        self._deadlines = QueryDeadlines(self._loop)
        self._root.accepting = True
        if self.placement is not None:
            self._watchdog = self._loop.create_task(
                self._watch_placement(), name=f"placement watchdog of {self.name}"
            )
        return self

    async def _watch_placement(self) -> None:
        """Invariant 5 of ``actors/placement.py``: no activation outlives ``serving()``."""
        placement = self.placement
        assert placement is not None
        while True:
            await asyncio.sleep(self.placement_check_interval)
            if self.activations and not placement.serving():
                await self.lose_activations(NOT_SERVING)

    async def lose_activations(self, reason: str) -> int:
        """Stop every activation without answering from memory: their queries fail with
        :class:`~actors.errors.ActivationLost` naming ``reason``; leases are not released
        (they are not ours any more). Waits until they have stopped; how many there were.

        The watchdog calls it when ``placement.serving()`` turns False; a service may call
        it at once from its membership's ``on_lost``.
        """
        cells = list(self.activations.items())
        for cell, activation in cells:
            activation.lost = True
            self.metrics.activations_lost += 1
            refuse(cell, functools.partial(ActivationLost, activation.persistence_id, reason))
        waiting = [cell.stopped_future for cell, _ in cells if not cell.stopped_future.done()]
        if waiting:
            await asyncio.wait(waiting)
        return len(cells)

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.shutdown()

    async def wait_for_snapshots(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until no background snapshot is in flight; False if some still are after
        ``timeout`` seconds (None: no limit). The snapshots go on either way."""
        return await self.snapshots.settle(timeout)

    async def shutdown(self) -> None:
        """Stop every actor, children first, and wait for them, then drain the background
        snapshots (bounded by ``snapshot_drain_timeout``); idempotent.

        It cannot run inside one of the system's actors (it would wait for itself).
        """
        inside = current_cell.get()
        if inside is not None and inside.system is self and not inside.stopping:
            raise ShutdownFromInside(
                f"actor {inside.path} cannot shut down its own system (it would wait for "
                "itself); stop it from outside the actors"
            )
        self._root.accepting = False
        await self._root.stop_children()
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
        self._closed = True
        await self.snapshots.drain(self.snapshot_drain_timeout)

    def dead_letter(self, recipient: ActorRef | None, msg: object,
                    sender: ActorRef | None) -> None:
        """Count, log and hand on a message nobody will handle (a query sender fails at once)."""
        self.metrics.dead_letters += 1
        where = recipient.path if recipient is not None else "nobody (no sender to reply to)"
        _log.debug("dead letter to %s: %s from %s", where, type(msg).__qualname__,
                   sender.path if sender is not None else "no sender")
        if isinstance(sender, ReplyRef) and recipient is not None:
            if isinstance(recipient, CellRef):
                recipient._cell.turn_away(sender)
            else:
                sender.not_found(recipient.path)
        hook = self.on_dead_letter
        if hook is not None:
            try:
                hook(DeadLetter(recipient, msg, sender))
            except Exception:
                _log.exception("the dead-letter hook of system %s raised", self.name)


Parent: TypeAlias = "ActorSystem | ActorRef | Context"
"""What ``spawn`` accepts as parent: the system, an actor's ref, or an actor's ``ctx``."""


def _node_of(parent: Parent) -> Node:
    node: Node
    if isinstance(parent, ActorSystem):
        node = parent._root
    elif isinstance(parent, CellRef | Context):
        node = parent._cell
    else:
        raise TypeError(f"parent must be an ActorSystem, an actor's ref or ctx, got {parent!r}")
    if not node.system.running:
        raise SystemNotRunning(f"actor system {node.system.name!r} is not running")
    if not node.accepting:
        raise ActorNotFound(node.path, "is stopping: it takes no new children")
    return node


def spawn_behaviour(parent: Parent, behaviour: Behaviour, name: str | None = None, *,
                    shutdown_after: float | None = None) -> ActorRef:
    """Start an actor running ``behaviour`` under ``parent``; every other spawn builds on it.

    ``name`` follows :data:`actors.validation.NAME_RULE` (a free ``$<n>`` name when None) and
    must not be taken by a live sibling (:class:`~actors.errors.DuplicateActorName`).
    ``shutdown_after`` (seconds) stops the actor once it has been idle that long.
    """
    node = _node_of(parent)
    if not isinstance(behaviour, Behaviour):
        raise TypeError(f"behaviour must be a Behaviour, got {behaviour!r}")
    idle = None if shutdown_after is None else validate_duration(shutdown_after, "shutdown_after")
    name = node.reserve_name(name)
    cell = Cell(node.system, node, name, behaviour, idle)
    node.children[name] = cell.ref
    node.system.metrics.live_actors += 1
    cell.start()
    return cell.ref


def spawn(parent: Parent, handler: Handler, name: str | None = None, *,
          initial_state: Any = None, initial_state_func: InitialStateFunc | None = None,
          on_crash: OnCrash | None = None, shutdown_after: float | None = None,
          after_stop: AfterStop | None = None) -> ActorRef:
    """Start a stateful actor: ``handler(state, msg, ctx)`` returns the next state."""
    behaviour = FunctionalBehaviour(handler, initial_state=initial_state,
                                    initial_state_func=initial_state_func,
                                    on_crash=on_crash, after_stop=after_stop)
    return spawn_behaviour(parent, behaviour, name, shutdown_after=shutdown_after)


def spawn_stateless(parent: Parent, handler: StatelessHandler, name: str | None = None, *,
                    max_concurrency: int = 1, on_crash: OnCrash | None = None,
                    shutdown_after: float | None = None) -> ActorRef:
    """Start a stateless actor: ``handler(msg, ctx)``, up to ``max_concurrency`` at once."""
    behaviour = StatelessBehaviour(handler, max_concurrency=max_concurrency, on_crash=on_crash)
    return spawn_behaviour(parent, behaviour, name, shutdown_after=shutdown_after)


def dispatch(ref: ActorRef, msg: object, sender: ActorRef | None = None) -> None:
    """Send ``msg`` and return at once; to a stopped actor it becomes a dead letter."""
    if not isinstance(ref, ActorRef):
        raise TypeError(f"dispatch needs an ActorRef, got {ref!r}")
    ref._tell(msg, sender)


async def query(ref: ActorRef, msg_or_factory: object, timeout: float) -> Any:  # noqa: ASYNC109
    """Send a message and wait for the reply (``ctx.reply(value)``) for at most ``timeout`` s.

    A callable ``msg_or_factory`` is called with the temporary reply ref and returns the
    message; either way the reply ref is the message's ``ctx.sender``. Raises ValueError for a
    timeout that is not positive and finite, :class:`~actors.errors.ActorNotFound` at once if
    the target is stopped (or stops before replying), :class:`~actors.errors.ActorCrashed`
    at once if the message crashed the actor, and :class:`~actors.errors.QueryTimeout`.
    """
    kind = type(timeout)
    if (kind is float or kind is int) and 0 < timeout < _INFINITY:
        seconds = float(timeout)
    else:
        seconds = validate_duration(timeout, "query timeout")
    if not isinstance(ref, CellRef):
        raise TypeError(f"query needs an actor's ref, got {ref!r}")
    cell = ref._cell
    if not cell.accepting:
        raise ActorNotFound(cell.path) if cell.refusal is None else cell.refusal()
    future: asyncio.Future[Any] = cell.loop.create_future()
    reply = ReplyRef(future, cell, seconds)
    reply.msg = msg = msg_or_factory(reply) if callable(msg_or_factory) else msg_or_factory
    pending = cell.pending
    pending.add(reply)
    ref._tell(msg, reply)
    deadlines = cell.deadlines
    key = deadlines.add(reply, seconds)
    try:
        return await future
    finally:
        deadlines.discard(reply, key)
        pending.discard(reply)


async def stop(ref: ActorRef) -> None:
    """Stop the actor (children first) and wait until it has stopped; idempotent.

    Called from inside the actor being stopped or one of its descendants, it cannot wait for
    itself: it requests the stop, which completes once the current message has been handled.
    """
    if not isinstance(ref, CellRef):
        raise TypeError(f"stop needs an actor's ref, got {ref!r}")
    cell = ref._cell
    cell.request_stop()
    node: Node | None = current_cell.get()
    while isinstance(node, Cell):
        if node is cell:
            return
        node = node.parent
    await asyncio.shield(cell.stopped_future)


__all__ = [
    "ActorSystem",
    "DeadLetter",
    "Parent",
    "dispatch",
    "query",
    "spawn",
    "spawn_behaviour",
    "spawn_stateless",
    "stop",
]

