"""Command batching: a persistent actor handles the commands waiting in its mailbox as one
batch, with one journal write for all of them.

Off by default (``max_batch = 1``: one command, then its writes, then the next). With
``max_batch = N`` (class attribute of a :class:`~actors.PersistentActor`, or
``spawn_persistent(..., max_batch=N)``) the actor, on taking a command, also takes the
commands queued behind it, up to N in all (and no more once the batch staged
:data:`MAX_BATCH_EVENTS` events), and:

* **decides each one against the state the ones before it left**, one at a time, in
  mailbox order, by running its handler exactly as today. Handlers are written as for one
  command at a time: ``await ctx.persist(event)`` inside a batch *stages* the event (it is
  encoded, checked storable, folded into ``ctx.state`` by ``on_event`` in the class API, and
  numbered: ``ctx.sequence_nr`` counts it) and returns at once, so the handler goes on and
  replies as usual;
* **writes the events of every command in one engine append** (carrying the placement
  fence, like every write), once the batch ends;
* **holds every reply** (``ctx.reply``, to a query or to an actor) made while an event of
  the batch is staged and not yet durable, and sends them, in order, only once that append
  returned. A reply made before the batch staged anything (a read at its head) is sent at
  once: it reflects only durable events. So a read after a write in the same batch is
  answered after that write is durable, as one at a time;
* **if the append fails**, acknowledges nothing: no held reply is sent, every command of
  the batch fails with the error (a query's caller gets :class:`~actors.ActorCrashed`), and
  supervision decides once, for the batch's last command, as for a failed write today
  (the default resets the actor). The state the batch folded is never used again: the
  journal is marked uncertain, so before its next command the actor recovers from the
  journal, which gives the state before the batch when nothing was written and the truth
  when a write whose outcome is unknown (a lost connection) did land. That is why the
  runtime keeps no copy of the state before the batch: a copy would be wrong exactly when
  the write's outcome is unknown, and recovery is needed then anyway (it is the journal's
  rule). The only cost is on the failure path.

**Pipelining** (``pipeline = True`` besides ``max_batch``; off by default, on for the
contacts user actor): while one batch's append is in flight, the actor already decides the
next batch from the commands queued behind it, against the state the first one left. So a
busy actor's Python work and its database round trip overlap instead of alternating. The
guarantees stay those of one batch at a time:

* appends stay one after the other: a batch is written only once the append before it
  returned, so the journal is the same as without pipelining;
* every reply of the next batch, a read at its head included, is held until that batch is
  durable (its state includes events of the batch in flight);
* if an append fails, nothing of the batch decided meanwhile is written either: both
  batches' commands fail with the error (on a lost lease the stop answers them), the
  journal is uncertain and the actor recovers before its next command, as for one batch;
  with ``retry_on_conflict`` a conflict re-decides the commands of both batches once,
  after recovering, as one batch;
* the snapshot strategy is asked once no later batch holds undurable events, with the
  state after the last durable batch, so a snapshot never includes an event that is not
  durable at its sequence number.

What is not batched, and faults:

* A batch ends at the first command whose handler raises: the events staged before the
  raise (its own included, as ``persist`` had returned to it) are written with the rest,
  the replies released, and then the fault goes to supervision exactly as one at a time
  (the commands still queued wait for its decision). Journal, replies and supervision are
  therefore those of one-at-a-time processing; only the moment of each write differs.
* A batch also ends, before taking more, when a request (stop, reset, escalation) waits,
  when the journal became uncertain, or when the actor stopped serving (cluster placement).
* Side effects other than replies (``dispatch`` to another actor, I/O) happen when the
  handler runs, before the batch is durable: a handler that must act only once its events
  are durable replies (replies are held) or runs on an actor without batching.
* ``ctx.snapshot()`` inside a batch first writes what the batch staged (its replies are
  released then); the batch goes on with the commands after, as a new batch.
* **Retry on conflict** (``retry_on_conflict``): a concurrency conflict on the batch's
  append means none of it was written; the actor recovers from the journal and decides
  every command of the batch again, once, against the recovered state, then writes them in
  one append (replies held by the first run are dropped; a reply already sent by a read at
  the head of the batch is sent again and dead-lettered). A command that faults in that
  second run ends it as above; the commands after it go back to the front of the mailbox.
  A second conflict fails every command with :class:`~actors.errors.ConflictPersists`. A
  batch that already wrote part of its events (``ctx.snapshot()`` above) is not re-run.
* An event the engine refuses as unstorable (a codec that claims ``folds_as_written`` for
  a payload that is not JSON) fails the whole batch; codecs that do not claim it have each
  payload checked when it is staged, so only the command that persists it fails.
* Snapshots: the strategy is asked once the batch is durable, for each event of the batch
  (for each command that persisted, in the functional API) with the state after the whole
  batch; a snapshot that falls due is taken of that state at the batch's last sequence
  number. ``ctx.defer_snapshot()`` counts for the batch's last command.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from actors.errors import ConflictPersists
from actors.ref import ActorRef, ReplyRef
from persistence.engine import NewEvent, normal_json
from persistence.errors import ConcurrencyConflict, LeaseLost

if TYPE_CHECKING:
    from actors.cell import Cell
    from actors.context import Context
    from actors.persistent_context import PersistentContext
    from actors.persistent_core import PersistentCore

DECIDE_SLICE = 0.002
"""Seconds a batch decides commands before it yields to the event loop once (then goes on):
a batch of hundreds of commands must not hold the loop (timers, other actors, the cluster's
renewals) for their whole decision time."""

RELEASE_SLICE = 32
"""Replies a batch sends per turn of the event loop: each wakes a caller, and hundreds of
callers woken at once (many actors' batches end with the same group commit) would hold the
loop for all their continuations in one turn."""

MAX_BATCH_EVENTS = 10_000
"""A batch takes no further command once it staged this many events (one command may
stage more: an import chunk is never split)."""


def check_max_batch(value: object) -> int:
    """``max_batch`` as given, or ValueError: a positive int (1: no batching)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"max_batch must be an int >= 1, got {value!r}")
    return value


def check_pipeline(value: object) -> bool:
    """``pipeline`` as given, or TypeError: a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"pipeline must be a bool, got {value!r}")
    return value


def normal_payload(event: NewEvent, persistence_id: str, sequence_nr: int) -> NewEvent:
    """``event`` (to be numbered ``sequence_nr``) with its payload as a replay will give it
    back (JSON-normal), or :class:`~persistence.errors.SerializationError` if the engine
    would refuse it."""
    normal = normal_json(
        event.payload,
        lambda: f"payload of event #{sequence_nr} ({event.type}) for {persistence_id!r}",
    )
    return NewEvent(event.type, normal, event.version, event.tags)


class Batch:
    """What one batch has staged and holds: its events, their snapshot marks, the replies
    waiting for the write, and the senders of its commands (to fail them if it fails)."""

    __slots__ = ("behind", "held", "marks", "senders", "staged", "wrote")

    def __init__(self) -> None:
        self.staged: list[NewEvent] = []
        """Encoded events not written yet, in order."""
        self.marks: list[tuple[int, Any]] = []
        """``(sequence_nr, event)`` to ask the snapshot strategy about once durable."""
        self.held: list[tuple[ActorRef | None, object]] = []
        """Replies ``(sender, value)`` waiting for the staged events to be durable."""
        self.senders: list[ActorRef | None] = []
        """The senders of the commands whose replies wait for this batch's write."""
        self.wrote = False
        """An earlier write of this batch succeeded (``ctx.snapshot()`` inside it)."""
        self.behind = False
        """Its append runs while the next batch is decided (pipelining): its staged events
        count in :attr:`PersistentCore.in_flight_events` until that append returns."""

    def stage(self, encoded: Sequence[NewEvent]) -> None:
        self.staged.extend(encoded)

    def mark(self, sequence_nr: int, state: object, event: Any) -> None:
        """Ask the snapshot strategy about ``event`` once the batch is durable."""
        self.marks.append((sequence_nr, event))

    def hold(self, sender: ActorRef | None, value: object) -> None:
        self.held.append((sender, value))

    def written(self) -> None:
        """The staged events are durable: forget them (the held replies go next)."""
        self.staged.clear()
        self.marks.clear()

    def clear(self) -> None:
        """Forget what is staged and held (a failed write, or to decide the batch again)."""
        self.written()
        self.held.clear()

    async def release(self, ctx: Context) -> None:
        """Send the held replies, in order (the write they waited for is durable),
        :data:`RELEASE_SLICE` per turn of the event loop."""
        held = self.held
        if held:
            self.held = []
            me = ctx.self
            system = ctx.system
            for index, (sender, value) in enumerate(held, start=1):
                if sender is None:
                    system.dead_letter(None, value, me)
                else:
                    sender._tell(value, me)
                if index % RELEASE_SLICE == 0 and index < len(held):
                    await asyncio.sleep(0)

    def fail(self, error: BaseException) -> None:
        """The write failed: drop the held replies, fail every query of the batch."""
        self.held.clear()
        for sender in self.senders:
            if isinstance(sender, ReplyRef):
                sender.crashed(error)


def cell_of(ctx: Context) -> Cell:
    """The cell of ``ctx``'s actor, whose mailbox a batch takes its commands from."""
    return ctx._cell


Commands = list[tuple[object, "PersistentContext[Any]"]]
"""The commands of one batch, in mailbox order, each with its context."""


async def run_batch(core: PersistentCore[Any], msg: object, ctx: PersistentContext[Any]) -> None:
    """Handle ``msg`` and the commands queued behind it as one batch (module docstring), or,
    with pipelining, as a run of batches each written while the next is decided."""
    if core.pipeline:
        await _run_pipelined(core, msg, ctx)
        return
    cell = cell_of(ctx)
    batch = core.batch = Batch()
    commands: Commands = [(msg, ctx)]
    try:
        fault = await _decide_commands(core, batch, commands, ctx, cell)
        may_retry = core.retry_on_conflict and not batch.wrote
        try:
            await commit(core, batch, ctx, may_retry=may_retry)
        except ConcurrencyConflict:
            if not may_retry:
                raise
            fault = await _decide_again(core, batch, commands, ctx, cell)
        if fault is not None:
            raise fault
    finally:
        core.batch = None
        if batch.staged and core.journal is not None:
            core.journal.uncertain = True  # folded but never written (cancelled): recover


async def _run_pipelined(
    core: PersistentCore[Any], msg: object, ctx: PersistentContext[Any]
) -> None:
    """Batches one after the other, each written while the next one is decided (the module
    docstring's *Pipelining*). One append is in flight at most: this loop waits for it
    (:func:`settle`) before it starts the next, so every failure is handled here."""
    cell = cell_of(ctx)
    journal = core.journal
    assert journal is not None
    behind: Batch | None = None
    behind_commands: Commands = []
    first_ctx = ctx
    batch = Batch()
    try:
        while True:
            batch = core.batch = Batch()
            commands: Commands = [(msg, first_ctx)]
            fault = await _decide_commands(core, batch, commands, ctx, cell)
            failed = await settle(core)
            if failed is not None:
                assert behind is not None
                if (isinstance(failed, ConcurrencyConflict) and core.retry_on_conflict
                        and not behind.wrote):
                    # neither batch was written: decide both again, once, as one batch
                    decided = batch
                    decided.clear()
                    core.in_flight_events = 0
                    core.write_failed = None
                    merged = batch = core.batch = Batch()
                    merged.senders = behind.senders + decided.senders
                    fault = await _decide_again(core, merged, behind_commands + commands, ctx,
                                                cell)
                    if fault is not None:
                        raise fault
                    return
                _fail_behind(journal, batch, failed)
                raise failed
            if fault is None and _may_go_on(core) and (taken := cell.take_queued()):
                batch.behind = True
                core.in_flight_events += len(batch.staged)
                core.writing = cell.loop.create_task(
                    commit_now(core, batch, ctx, may_retry=core.retry_on_conflict)
                )
                behind, behind_commands = batch, commands
                msg, first_ctx = taken[0], ctx.with_sender(taken[1])
                core.batch = None
                await asyncio.sleep(0)  # let the append reach the engine before deciding on
                continue
            try:
                await commit(core, batch, ctx, may_retry=core.retry_on_conflict)
            except ConcurrencyConflict:
                if not core.retry_on_conflict or batch.wrote:
                    raise
                fault = await _decide_again(core, batch, commands, ctx, cell)
            if fault is not None:
                raise fault
            return
    finally:
        core.batch = None
        core.in_flight_events = 0
        core.write_failed = None
        writing, core.writing = core.writing, None
        if writing is not None:  # left while an append was in flight (cancelled)
            journal.uncertain = True
            writing.cancel()
            writing.add_done_callback(_retrieve)
        if batch.staged:
            journal.uncertain = True


def _fail_behind(journal: Any, batch: Batch, failed: BaseException) -> None:
    """The append of the batch before ``batch`` failed: ``batch`` was decided on its state,
    so nothing of it is written and its commands fail alike (the stop answers them after a
    lost lease)."""
    journal.uncertain = True
    batch.clear()
    if not isinstance(failed, LeaseLost):
        batch.fail(failed)


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


async def settle(core: PersistentCore[Any]) -> BaseException | None:
    """Wait for the append in flight (pipelining), if any; return the error an append of
    this run failed with, if one did (it stays the answer until the run ends)."""
    writing, core.writing = core.writing, None
    if writing is not None:
        try:
            await writing
        except BaseException as error:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this actor is being cancelled, not the append failing
            core.write_failed = error
    return core.write_failed


def _may_go_on(core: PersistentCore[Any]) -> bool:
    """Whether a pipelined run may take another batch: the journal certain, still serving."""
    journal = core.journal
    if journal is None or journal.uncertain:
        return False
    activation = core.activation
    return activation is None or activation.serving()


async def _decide_commands(
    core: PersistentCore[Any],
    batch: Batch,
    commands: Commands,
    ctx: PersistentContext[Any],
    cell: Cell,
) -> BaseException | None:
    """Decide ``commands[0]``, then take and decide the commands queued behind it (appended
    to ``commands``) while the batch may grow; return the fault that ended it, if any."""
    clock = cell.loop.time
    slice_ends = clock() + DECIDE_SLICE
    msg, first_ctx = commands[0]
    fault = await _decide(core, batch, msg, first_ctx)
    while fault is None and len(commands) < core.max_batch and _may_grow(core, batch):
        if clock() > slice_ends:
            await asyncio.sleep(0)
            slice_ends = clock() + DECIDE_SLICE
        taken = cell.take_queued()
        if taken is None:
            break
        next_msg, sender = taken
        next_ctx = ctx.with_sender(sender)
        commands.append((next_msg, next_ctx))
        fault = await _decide(core, batch, next_msg, next_ctx)
    return fault


async def _decide_again(
    core: PersistentCore[Any],
    batch: Batch,
    commands: Commands,
    ctx: PersistentContext[Any],
    cell: Cell,
) -> BaseException | None:
    """Retry on conflict: recover, decide the batch's commands once more, write them."""
    ctx.system.metrics.conflict_retries += 1
    try:
        await core.recover(ctx)
    except BaseException as error:
        batch.fail(error)
        raise
    batch.senders.clear()
    fault = None
    for index, (msg, command_ctx) in enumerate(commands):
        cell.handling(msg, command_ctx.sender)
        fault = await _decide(core, batch, msg, command_ctx)
        if fault is not None:
            cell.put_back([(m, c.sender) for m, c in commands[index + 1:]])
            break
    try:
        await commit(core, batch, ctx, may_retry=True)
    except ConcurrencyConflict as again:
        persists = ConflictPersists(core.persistence_id, again)
        batch.fail(persists)
        raise persists from again
    return fault


def _may_grow(core: PersistentCore[Any], batch: Batch) -> bool:
    """Whether the batch may take another command (see the module docstring)."""
    return len(batch.staged) < MAX_BATCH_EVENTS and _may_go_on(core)


async def _decide(
    core: PersistentCore[Any], batch: Batch, msg: object, ctx: PersistentContext[Any]
) -> BaseException | None:
    """Run one command's handler; return its fault (which ends the batch), if any."""
    batch.senders.append(ctx.sender)
    core.snapshotter.deferral = None
    core.pctx = ctx
    try:
        await core.handle(msg, ctx)
    except Exception as error:
        return error
    except asyncio.CancelledError as error:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        return error
    return None


async def commit(
    core: PersistentCore[Any], batch: Batch, ctx: PersistentContext[Any], *,
    may_retry: bool = False,
) -> None:
    """Write what ``batch`` staged in one append, then release its replies and ask the
    snapshot strategy. If the write fails, nothing staged or held survives, the journal is
    uncertain, and every command of the batch fails with the error, except on a lost lease
    (the stop answers the queries with ``ActivationLost``) and on a conflict the caller may
    still retry (``may_retry``). With pipelining the append in flight comes first; if it
    failed, this batch fails with it, unwritten."""
    failed = await settle(core)
    if failed is not None:
        assert core.journal is not None
        _fail_behind(core.journal, batch, failed)
        raise failed
    await commit_now(core, batch, ctx, may_retry=may_retry)


async def commit_now(
    core: PersistentCore[Any], batch: Batch, ctx: PersistentContext[Any], *,
    may_retry: bool = False,
) -> None:
    """:func:`commit` with no append in flight before it (the pipelined run checked)."""
    journal = core.journal
    assert journal is not None
    may_retry = may_retry and not batch.wrote
    if batch.staged:
        try:
            await core.write(batch.staged, ctx)
        except BaseException as error:
            journal.uncertain = True  # the state holds the batch: recover before going on
            batch.clear()
            retried = may_retry and isinstance(error, ConcurrencyConflict)
            if not (retried or isinstance(error, LeaseLost)):
                batch.fail(error)
            raise
        if batch.behind:
            core.in_flight_events -= len(batch.staged)
        batch.wrote = True
        later = core.batch
        if later is not None and later is not batch:
            later.marks[:0] = batch.marks  # the state now holds the later batch: ask then
        else:
            _ask_snapshotter(core, batch, journal.sequence_nr)
        batch.written()
    activation = core.activation
    if activation is not None and activation.lost:
        batch.held.clear()  # nothing is answered from memory: the queries fail on the stop
    batch.senders.clear()
    await batch.release(ctx)
    if core.snapshotter.captured is not None:
        await core.snapshotter.flush()


def _ask_snapshotter(core: PersistentCore[Any], batch: Batch, last_written: int) -> None:
    """Ask the strategy about each mark with the state after the batch; if one is due,
    the snapshot is of that state, at the batch's last sequence number."""
    snapshotter = core.snapshotter
    strategy = snapshotter.strategy
    if strategy is None:
        return
    state = core.state
    last = snapshotter.last
    for sequence_nr, event in batch.marks:
        if strategy.due(sequence_nr, last, state, event):
            snapshotter.fell_due(last_written, state)
            return
