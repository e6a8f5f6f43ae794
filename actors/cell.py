"""The cell: one actor's mailbox and the loop that feeds its behaviour one message at a time.

The mailbox is a deque drained by one task per actor. When the mailbox is empty the task
parks on a future, which the next message wakes (cheaper than a task per burst: creating a
task registers it in asyncio's weak set). Everything that touches the behaviour
(``started``, ``receive``, ``on_crash``, ``reset``, ``stopped``) runs in that task, so an
actor never runs two of them at once, whatever supervision decides.

Requests from outside (stop, reset, an escalation from a child, a fault reported by a
concurrent stateless handler) set ``attention``; the loop serves them between two messages,
before the next queued message.

A behaviour that handles queued messages as one batch (a persistent actor's command
batching, ``actors/batching.py``) takes them with :meth:`Cell.take_queued` from inside its
``receive``: only while no request waits, so a batch never delays a stop, a reset or an
escalation by more than the message being handled. A fault raised by ``receive`` belongs to
the message named by :meth:`Cell.handling` (the last one taken, unless the behaviour says
otherwise), and supervision sees that message.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from actors import supervision
from actors.context import Context
from actors.errors import ActorError
from actors.ref import ActorRef, CellRef, ReplyRef
from actors.supervision import Decision, Escalation, PendingEscalation
from actors.tree import Node

if TYPE_CHECKING:
    from actors.behaviour import Behaviour
    from actors.system import ActorSystem

current_cell: ContextVar[Cell | None] = ContextVar("actors_current_cell", default=None)
"""The cell whose drain task (or a task it started) is running; used to avoid self-deadlock."""

_BATCH = 256
"""Messages handled in a row before the drain task yields to the event loop."""

_RESET = "reset"
_ESCALATION = "escalation"
_FAULT = "fault"


class Cell(Node):
    """One actor: its place in the tree, mailbox, behaviour and life cycle."""

    __slots__ = (
        "_log",
        "attention",
        "behaviour",
        "crash_task",
        "ctx",
        "current",
        "deadlines",
        "idle_since",
        "idle_timer",
        "loop",
        "mailbox",
        "name",
        "needs_start",
        "parent",
        "pending",
        "query_path",
        "ref",
        "refusal",
        "requests",
        "shutdown_after",
        "stopped_future",
        "stopping",
        "task",
        "unprocessed",
        "verdict",
        "waiter",
    )

    def __init__(self, system: ActorSystem, parent: Node, name: str, behaviour: Behaviour,
                 shutdown_after: float | None) -> None:
        super().__init__(system, f"{parent.path}/{name}")
        self.parent = parent
        self.name = name
        self.behaviour = behaviour
        self.shutdown_after = shutdown_after
        self.loop = system.loop
        self.deadlines = system.deadlines
        self.query_path = f"{system.name}/$query"
        self.mailbox: deque[tuple[object, ActorRef | None]] = deque()
        self.requests: deque[tuple[str, object]] = deque()
        self.current: tuple[object, ActorRef | None] | None = None
        """The message being handled and its sender (what a fault is reported against)."""
        self.pending: set[ReplyRef] = set()
        self.task: asyncio.Task[None] | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.accepting = True
        self.stopping = False
        self.needs_start = True
        self.attention = True
        self.crash_task: asyncio.Future[Any] | None = None
        self.verdict: asyncio.Future[Decision] | None = None
        self.idle_since = 0.0
        self.idle_timer: asyncio.TimerHandle | None = None
        self.stopped_future: asyncio.Future[None] = self.loop.create_future()
        self.unprocessed: tuple[object, ...] = ()
        self.refusal: Callable[[], ActorError] | None = None
        """Set when the actor was stopped by cluster placement (``actors/placement.py``):
        makes the error its queries fail with instead of ``ActorNotFound``."""
        self._log: logging.Logger | None = None
        self.ref = CellRef(self)
        self.ctx = Context(self)

    def __repr__(self) -> str:
        return f"<Cell {self.path}>"

    @property
    def log(self) -> logging.Logger:
        log = self._log
        if log is None:
            log = self._log = logging.getLogger("actors." + self.path.replace("/", "."))
        return log

    def as_parent(self) -> ActorRef:
        return self.ref

    # -- requests from outside the drain task -------------------------------------------

    def start(self) -> None:
        self.task = self.loop.create_task(self._drain(), name=f"actor {self.path}")

    def wake(self) -> None:
        """Wake the parked drain task (call only when ``waiter`` is set)."""
        waiter = self.waiter
        self.waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def request_stop(self) -> None:
        """Stop after the current message (or at once when idle); idempotent."""
        if self.stopping:
            return
        self.stopping = True
        self.accepting = False
        self.attention = True
        self.parent.child_stopping(self)
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.verdict is not None and not self.verdict.done():
            self.verdict.set_result(Decision.STOP)
        if self.crash_task is not None:
            self.crash_task.cancel()
        if self.waiter is not None:
            self.wake()

    def request_reset(self) -> None:
        """Reset at the next safe point (ends a suspension with a reset)."""
        if self.stopping:
            return
        if self.verdict is not None and not self.verdict.done():
            self.verdict.set_result(Decision.RESET)
            return
        self._request(_RESET, None)

    def receive_escalation(self, pending: PendingEscalation) -> None:
        if self.stopping:
            pending.settle_stop()
            return
        self._request(_ESCALATION, pending)

    def report_fault(self, msg: object, sender: ActorRef | None, error: BaseException) -> None:
        """A fault outside the drain task (a concurrent stateless handler): supervise it."""
        supervision.record_fault(self, msg, sender, error)
        if not self.stopping:
            self._request(_FAULT, (msg, error))

    def _request(self, kind: str, payload: object) -> None:
        self.requests.append((kind, payload))
        self.attention = True
        if self.waiter is not None:
            self.wake()

    async def escalate(self, msg: object, error: BaseException) -> Decision:
        """Suspend until the parent decides: return RESET or STOP for this cell."""
        if self.stopping:
            return Decision.STOP
        verdict: asyncio.Future[Decision] = self.loop.create_future()
        self.verdict = verdict
        self.system.metrics.escalations += 1
        self.parent.receive_escalation(
            PendingEscalation(Escalation(self.ref, msg, error), self, verdict)
        )
        try:
            return await verdict
        finally:
            self.verdict = None

    # -- the drain task ----------------------------------------------------------------

    async def _drain(self) -> None:
        current_cell.set(self)
        mailbox = self.mailbox
        ctx = self.ctx
        receive = self.behaviour.receive
        metrics = self.system.metrics
        handled = 0
        try:
            while True:
                if self.attention:
                    if self.stopping:
                        await self._stop()
                        return
                    await self._attend()
                    continue
                if not mailbox:
                    metrics.messages_handled += handled
                    handled = 0
                    self.current = None  # an idle actor keeps no message (nor its sender)
                    await self._park()
                    continue
                msg, sender = current = mailbox.popleft()
                self.current = current
                ctx.sender = sender
                try:
                    await receive(msg, ctx)
                except Exception as error:
                    await self._fault(error)
                except asyncio.CancelledError as error:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise
                    await self._fault(error)
                handled += 1
                if handled == _BATCH:
                    metrics.messages_handled += handled
                    handled = 0
                    await asyncio.sleep(0)
        except Exception as error:
            await self._runtime_failed(error)
        finally:
            metrics.messages_handled += handled

    async def _runtime_failed(self, error: Exception) -> None:
        """The drain task's last resort: an error escaped the runtime itself (supervision,
        a start, a reset or a stop: everything a behaviour raises is caught before it gets
        here). Ending the task there would leave the actor neither running nor stopped, its
        queries unanswered and every ``stop()`` of it, its parent's and the system's close
        waiting for ever; instead it is logged and the actor stopped as after a STOP."""
        self.log.critical("actor %s: the runtime failed (%r); stopping the actor", self.path,
                          error, exc_info=error)
        if self.stopped_future.done():
            return
        self.request_stop()
        try:
            await self._stop()
        except Exception as again:
            self.log.critical("actor %s: stopping it failed too (%r)", self.path, again,
                              exc_info=again)

    async def _park(self) -> None:
        """Wait, idle, for the next message or request (and arm the passivation timer).

        A cancellation of the drain task always ends it: if code the actor ran swallowed one
        (caught the ``CancelledError`` and went on), the task would otherwise park here for
        ever, still marked as cancelling, and ``asyncio.run`` would wait for it at shutdown.
        """
        task = self.task  # the drain task: a cancellation of it that was swallowed ends it
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        if self.shutdown_after is not None:
            self.idle_since = self.loop.time()
            if self.idle_timer is None:
                self.idle_timer = self.loop.call_later(self.shutdown_after, self._idle_check)
        waiter = self.waiter = self.loop.create_future()
        try:
            await waiter
        finally:
            self.waiter = None

    async def _attend(self) -> None:
        """Serve a start or a request; called with ``attention`` set and not stopping.

        Like :meth:`_park`, it ends a drain task whose cancellation was swallowed, so that a
        start failing again and again (its engine closed at shutdown) cannot outlive it."""
        task = self.task
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        if self.needs_start:
            self.needs_start = False
            self.ctx.sender = None
            try:
                await self.behaviour.started(self.ctx)
            except Exception as error:
                supervision.record_fault(self, None, None, error, in_started=True)
                await self._apply(await supervision.decide(self, None, error))
        elif self.requests:
            kind, payload = self.requests.popleft()
            if kind == _RESET:
                await self._reset()
            elif kind == _ESCALATION:
                assert isinstance(payload, PendingEscalation)
                await self._apply(await supervision.handle_escalation(self, payload))
            else:
                assert isinstance(payload, tuple)
                failed_msg, failure = payload
                await self._apply(await supervision.decide(self, failed_msg, failure))
        if not (self.stopping or self.needs_start or self.requests):
            self.attention = False

    async def _fault(self, error: BaseException) -> None:
        """Supervise a fault of the message being handled (see :meth:`handling`)."""
        msg, sender = self.current or (None, None)
        self.current = None
        supervision.record_fault(self, msg, sender, error)
        await self._apply(await supervision.decide(self, msg, error))

    # -- batches: taking queued messages from inside receive ---------------------------

    def take_queued(self) -> tuple[object, ActorRef | None] | None:
        """The next queued message and its sender, now being handled, or None if the
        mailbox is empty or a request (stop, reset, escalation, fault) waits to be served.

        For a behaviour handling several queued messages in one ``receive`` (a batch): each
        message taken counts as handled, and a fault raised from then on is reported
        against it unless :meth:`handling` names another one.
        """
        if self.attention or not self.mailbox:
            return None
        current = self.current = self.mailbox.popleft()
        self.ctx.sender = current[1]
        self.system.metrics.messages_handled += 1
        return current

    def handling(self, msg: object, sender: ActorRef | None) -> None:
        """Name the message a fault raised from now on is reported against."""
        self.current = (msg, sender)
        self.ctx.sender = sender

    def put_back(self, messages: list[tuple[object, ActorRef | None]]) -> None:
        """Return taken messages, in order, to the front of the mailbox (a batch that ends
        before handling them: they are handled next, as if never taken)."""
        self.mailbox.extendleft(reversed(messages))
        self.system.metrics.messages_handled -= len(messages)

    async def _apply(self, decision: Decision) -> None:
        """Apply RESUME, RESET or STOP (what supervision leaves for the cell itself)."""
        if decision is Decision.RESET:
            await self._reset()
        elif decision is Decision.STOP:
            self.request_stop()

    async def _reset(self) -> None:
        """reset(), stop and await the children, then started() before the next message."""
        try:
            self.behaviour.reset()
        except Exception as error:
            self.log.error("reset() of %s raised %r: stopping it", self.path, error,
                           exc_info=error)
            self.request_stop()
            return
        self.system.metrics.resets += 1
        await self.stop_children()
        self.needs_start = True
        self.attention = True
        # A reset loop (started() failing again and again) must not starve the event loop.
        await asyncio.sleep(0)

    async def _stop(self) -> None:
        """Children first, then ``stopped`` with the unprocessed mailbox, then the queries."""
        orphans: list[ReplyRef] = []
        try:
            await self.stop_children()
            unprocessed = [msg for msg, _ in self.mailbox]
            orphans.extend(s for _, s in self.mailbox if isinstance(s, ReplyRef))
            self.mailbox.clear()
            self.requests.clear()
            self.unprocessed = tuple(unprocessed)
            if unprocessed:
                self.log.debug("actor %s stops with %d unprocessed messages", self.path,
                               len(unprocessed))
            self.ctx.sender = None
            try:
                await self.behaviour.stopped(self.ctx, unprocessed)
            except Exception as error:
                self.log.error("stopped() of %s raised %r", self.path, error, exc_info=error)
        finally:
            for reply in orphans:
                self.turn_away(reply)
            for reply in self.pending:
                self.turn_away(reply)
            self.pending.clear()
            self.unprocessed = ()
            # Refs outlive their actor (cached by clients): they must not keep its state alive.
            del self.behaviour
            self.current = None
            self.parent.child_stopped(self)
            self.system.metrics.live_actors -= 1
            if not self.stopped_future.done():
                self.stopped_future.set_result(None)

    def turn_away(self, reply: ReplyRef) -> None:
        """Fail a query this stopped (or stopping) actor will never answer."""
        refusal = self.refusal
        if refusal is None:
            reply.not_found(self.path)
        else:
            reply.fail(refusal())

    # -- passivation -------------------------------------------------------------------

    def _idle_check(self) -> None:
        """The ``shutdown_after`` timer: stop the actor if it stayed idle long enough."""
        self.idle_timer = None
        if self.stopping or self.waiter is None or self.shutdown_after is None:
            return  # a busy actor re-arms the timer when its mailbox empties
        remaining = self.idle_since + self.shutdown_after - self.loop.time()
        if remaining > 0:
            self.idle_timer = self.loop.call_later(remaining, self._idle_check)
            return
        self.log.debug("actor %s passivated after %gs idle", self.path, self.shutdown_after)
        self.system.metrics.passivations += 1
        self.request_stop()

