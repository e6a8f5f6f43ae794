"""Supervision: what happens when an actor's code raises.

A *fault* is an exception raised by ``Behaviour.receive`` (the handler) or by
``Behaviour.started`` (then ``msg`` is ``None``). Every fault is logged exactly once, at
ERROR level on the actor's logger, with the actor path, the message type and the error
(with its traceback); ``system.metrics.faults`` counts it. If the failing message came from a
query, that query fails at once with :class:`~actors.ActorCrashed` whatever the decision.
Then the actor's ``on_crash(msg, error, ctx)`` (sync or async) returns a :class:`Decision`.
While it runs (e.g. a backoff delay) the actor handles nothing and its mailbox keeps every
message, in order; a stop of the actor interrupts it. The failing message is always dropped:
no decision retries it.

Decisions about the actor's own fault:

``STOP`` (the default)
    The actor stops: its children stop first, then ``after_stop``/``Behaviour.stopped`` sees
    the unprocessed mailbox, then its pending queries fail with ``ActorNotFound``.
``STOP_ALL``
    The actor and all its siblings (every child of its parent; for a top-level actor, every
    top-level actor of the system) stop.
``RESET``
    ``Behaviour.reset()`` runs (the state goes back to the initial one), the actor's children
    are stopped and awaited, then ``started()`` runs again before the next message. The
    mailbox keeps the following messages in order.
``RESET_ALL``
    The actor and all its siblings reset. Each sibling resets at its next safe point (after
    the message it is handling, before the next one): no re-entrancy.
``RESUME``
    The actor keeps its state (a functional actor keeps the state it had before the message)
    and goes on with the next message.
``ESCALATE``
    The actor is suspended (it handles nothing; its mailbox keeps its messages) and the
    fault goes to its parent, whose ``on_crash`` is called with ``msg`` an :class:`Escalation`
    (the child's ref, the message and the error) and the same ``error``. The parent handles
    it between two of its own messages (escalations go before its queued messages), so
    nothing runs re-entrantly in the parent. The parent's decision always ends the
    suspension: the child is reset or stopped, never left waiting (nact's bug). When the
    root (the system itself) receives an escalation, the child is stopped and a WARNING is
    logged.

Decisions of a parent handling an escalation, and their effect on the escalating child:

``STOP_CHILD`` / ``RESET_CHILD``
    The child is stopped / reset (reset as above: the failing message is dropped, it goes on
    with its mailbox). The parent goes on with its next message.
``STOP_ALL_CHILDREN`` / ``RESET_ALL_CHILDREN``
    The same for every child of the parent (the others at their next safe point).
``RESUME``
    The parent goes on; the child, left unaddressed, is stopped (logged at WARNING).
``STOP`` / ``STOP_ALL`` / ``RESET`` / ``RESET_ALL``
    Applied to the parent as above; the child is stopped with the parent's children.
``ESCALATE``
    The parent is suspended too and escalates further up, with ``msg`` an ``Escalation``
    wrapping the child's; the child stays suspended until its parent's fate is decided,
    which then stops it (a stopped or reset parent stops its children).

A child-only decision (``STOP_CHILD`` ...) returned for an actor's own fault, a value that
is not a ``Decision``, or an ``on_crash`` that raises (a ``CancelledError`` included, unless
the actor is stopping or its own task is being cancelled), is logged at ERROR and taken as
``STOP``. A stop of the actor ends ``on_crash`` with ``STOP``; a cancellation of the actor's
task (``asyncio.run`` ending with the system still open) ends the task there, like a
cancelled handler, and decides nothing. A fault in ``started()`` goes through the same
supervision; ``RESUME`` then goes on with the next message as if ``started()`` had completed.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from actors.ref import ActorRef, ReplyRef

if TYPE_CHECKING:
    from actors.cell import Cell
    from actors.context import Context

_log = logging.getLogger("actors")


class Decision(enum.Enum):
    """What ``on_crash`` decides; see the module docstring for each one's exact effect."""

    STOP = "stop"
    STOP_ALL = "stop_all"
    RESET = "reset"
    RESET_ALL = "reset_all"
    RESUME = "resume"
    ESCALATE = "escalate"
    STOP_CHILD = "stop_child"
    STOP_ALL_CHILDREN = "stop_all_children"
    RESET_CHILD = "reset_child"
    RESET_ALL_CHILDREN = "reset_all_children"


OnCrash: TypeAlias = "Callable[[object, BaseException, Context], Decision | Awaitable[Decision]]"
"""``on_crash(msg, error, ctx) -> Decision``, sync or async."""

CHILD_DECISIONS = frozenset(
    {
        Decision.STOP_CHILD,
        Decision.STOP_ALL_CHILDREN,
        Decision.RESET_CHILD,
        Decision.RESET_ALL_CHILDREN,
    }
)
"""The decisions only a parent handling an escalation may take."""


@dataclass(frozen=True, slots=True)
class Escalation:
    """The ``msg`` a parent's ``on_crash`` receives when a child escalates its fault."""

    child: ActorRef
    msg: object
    """The message the child failed on (None for a fault in ``started()``)."""
    error: BaseException


class PendingEscalation:
    """An escalation on its way up, and the suspended child waiting for its verdict."""

    __slots__ = ("child", "escalation", "verdict")

    def __init__(self, escalation: Escalation, child: Cell, verdict: asyncio.Future[Decision]):
        self.escalation = escalation
        self.child = child
        self.verdict = verdict

    @property
    def settled(self) -> bool:
        return self.verdict.done()

    def settle_stop(self) -> None:
        if not self.verdict.done():
            self.verdict.set_result(Decision.STOP)

    def settle_reset(self) -> None:
        if not self.verdict.done():
            self.verdict.set_result(Decision.RESET)


def record_fault(cell: Cell, msg: object, sender: ActorRef | None, error: BaseException, *,
                 in_started: bool = False) -> None:
    """Log the fault once, count it, and fail the query whose message caused it."""
    what = "started()" if in_started else f"a {type(msg).__qualname__} message"
    cell.log.error("actor %s failed in %s: %r", cell.path, what, error, exc_info=error)
    cell.system.metrics.faults += 1
    if isinstance(sender, ReplyRef):
        sender.crashed(error)


async def ask_on_crash(cell: Cell, msg: object, error: BaseException, *,
                       escalated: bool) -> Decision:
    """Call the behaviour's ``on_crash``; a broken answer is logged and taken as STOP."""
    ctx = cell.ctx
    try:
        outcome = cell.behaviour.on_crash(msg, error, ctx)
        if inspect.isawaitable(outcome):
            task = asyncio.ensure_future(outcome)
            cell.crash_task = task
            try:
                decision: object = await task
            finally:
                cell.crash_task = None
        else:  # pragma: no cover - Behaviour.on_crash is async; kept for duck-typed ones
            decision = outcome
    except asyncio.CancelledError as failure:
        if cell.stopping:
            return Decision.STOP  # the stop interrupted on_crash
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the actor's own task is cancelled (a shutdown): it ends, deciding nothing
        cell.log.error("on_crash of %s raised %r: stopping it", cell.path, failure,
                       exc_info=failure)
        return Decision.STOP
    except Exception as failure:
        cell.log.error("on_crash of %s raised %r: stopping it", cell.path, failure,
                       exc_info=failure)
        return Decision.STOP
    if not isinstance(decision, Decision):
        cell.log.error("on_crash of %s returned %r, not a Decision: stopping it",
                       cell.path, decision)
        return Decision.STOP
    if decision in CHILD_DECISIONS and not escalated:
        cell.log.error("on_crash of %s returned %s for its own fault (only valid for an "
                       "escalation): stopping it", cell.path, decision.name)
        return Decision.STOP
    return decision


def _siblings(cell: Cell) -> list[Cell]:
    return [ref._cell for ref in list(cell.parent.children.values()) if ref._cell is not cell]


async def decide(cell: Cell, msg: object, error: BaseException) -> Decision:
    """Decide about ``cell``'s own fault and act on the others; return RESUME, RESET or STOP.

    The returned decision is what the cell's loop then applies to the cell itself.
    """
    decision = await ask_on_crash(cell, msg, error, escalated=False)
    return await decide_for_self(cell, decision, msg, error)


async def handle_escalation(cell: Cell, pending: PendingEscalation) -> Decision:
    """``cell`` decides about an escalated child; return what ``cell`` itself must do."""
    if pending.settled:
        return Decision.RESUME
    escalation = pending.escalation
    cell.ctx.sender = None
    decision = await ask_on_crash(cell, escalation, escalation.error, escalated=True)
    cell.log.debug("actor %s decided %s on the fault escalated by %s", cell.path,
                   decision.name, escalation.child.path)
    if decision is Decision.STOP_CHILD:
        pending.settle_stop()
        return Decision.RESUME
    if decision is Decision.RESET_CHILD:
        pending.settle_reset()
        return Decision.RESUME
    if decision is Decision.STOP_ALL_CHILDREN or decision is Decision.RESET_ALL_CHILDREN:
        stopping = decision is Decision.STOP_ALL_CHILDREN
        if stopping:
            pending.settle_stop()
        else:
            pending.settle_reset()
        for ref in list(cell.children.values()):
            sibling = ref._cell
            if sibling is not pending.child:
                if stopping:
                    sibling.request_stop()
                else:
                    sibling.request_reset()
        return Decision.RESUME
    if decision is Decision.RESUME:
        if not pending.settled:
            cell.log.warning("actor %s resumed without deciding about %s, which escalated "
                             "a fault: stopping it", cell.path, escalation.child.path)
            pending.settle_stop()
        return Decision.RESUME
    # STOP, STOP_ALL, RESET, RESET_ALL, ESCALATE concern the parent; its children (the
    # escalating one included) are stopped when it stops or resets.
    return await decide_for_self(cell, decision, escalation, escalation.error)


async def decide_for_self(cell: Cell, decision: Decision, msg: object,
                          error: BaseException) -> Decision:
    """Act on the siblings for ``decision``; return RESUME, RESET or STOP for ``cell`` itself."""
    if decision is Decision.STOP_ALL:
        for sibling in _siblings(cell):
            sibling.request_stop()
        return Decision.STOP
    if decision is Decision.RESET_ALL:
        for sibling in _siblings(cell):
            sibling.request_reset()
        return Decision.RESET
    if decision is Decision.ESCALATE:
        cell.log.debug("actor %s escalates a fault to its parent", cell.path)
        return await cell.escalate(msg, error)
    return decision
