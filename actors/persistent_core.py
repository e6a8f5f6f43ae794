"""The machinery both persistent APIs share: recovery, the persist path, the snapshot points.

A :class:`PersistentCore` is the :class:`~actors.behaviour.Behaviour` of one persistent actor.
Recovery runs in ``started()``, so the cell's mailbox holds (stashes) every command that
arrives meanwhile, and a handler awaiting ``ctx.persist`` holds it until the write is durable.
The journal (``actors/journal.py``) advances the sequence number only after the engine
confirms; recovery (``actors/recovery.py``) loads the latest usable snapshot and streams the
rest; the snapshot path (``actors/snapshots.py``) is asked at the points this module marks.
The class API (``actors/persistent.py``) and the functional API
(``actors/persistent_functional.py``) supply the abstract methods.

**Command batching** (``max_batch``, 1 by default: off): the actor may take the commands
queued in its mailbox as one batch, decided one after the other, written in one append, and
answered once that append is durable; ``actors/batching.py`` states the exact semantics.

Under cluster placement the actor's life is one activation holding a lease: acquired in
``started()`` before recovery, carried by every write, released in ``stopped()``; the rules
are ``actors/placement.py``'s.

**Retry on conflict** (``retry_on_conflict``, off by default, on for the contacts user
actor): when a command's persist meets a :class:`~persistence.errors.ConcurrencyConflict`
(another writer appended to this persistence id, e.g. an old process or a script), the
actor recovers from the journal and runs the *same* command once more against the
recovered state, so it is decided on fresh state instead of failing. A command that carried
an expected version then fails its own check naturally; a command that had already
persisted part of its events before the conflict is not re-run (that would write them
twice): it fails with the conflict, as does a second conflict in a row
(:class:`~actors.errors.ConflictPersists`). Either way supervision then resets the actor.
With command batching the unit is the batch: nothing of it is written before its one
append, so a conflict there re-decides every command of the batch once
(``actors/batching.py``).
"""

from __future__ import annotations

import asyncio
import inspect
from abc import abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar, cast

from actors import batching, placement
from actors.batching import Batch
from actors.behaviour import Behaviour
from actors.context import Context
from actors.errors import (
    ActorNotStarted,
    CalledDuringRecovery,
    ConflictPersists,
    NoEngineConfigured,
    SnapshotRefused,
)
from actors.journal import Journal
from actors.persistent_context import PersistentContext
from actors.recovery import RecoveryReport, recover
from actors.snapshots import Snapshotter, unwrap_snapshot
from actors.supervision import Decision
from actors.system import ActorSystem, Parent
from actors.upcasting import EventCodec
from persistence.engine import Engine, Json, NewEvent, Snapshot, StoredEvent
from persistence.errors import ConcurrencyConflict, LeaseLost

S = TypeVar("S")

_NO_TAGS: frozenset[str] = frozenset()


async def maybe_await(value: object) -> Any:
    """The result of a user hook that may be sync or async."""
    if inspect.isawaitable(value):
        return await value
    return value


def _no_engine(what: str, where: str) -> NoEngineConfigured:
    return NoEngineConfigured(
        f"{what} at {where!r} needs a persistence engine, but its actor system has none: "
        f"create it with ActorSystem(name, engine=InMemoryEngine()) or a PostgresEngine"
    )


def engine_of(ctx: Context, what: str) -> Engine:
    """The system's engine, or a clear error saying how to configure one."""
    engine = ctx.system.engine
    if engine is None:
        raise _no_engine(what, ctx.path)
    return engine


def require_engine(parent: Parent, what: str) -> None:
    """Fail at spawn time, not in the actor, when the parent's system has no engine.

    An ``ActorRef`` parent does not expose its system; that case fails in ``started()``.
    """
    system = parent if isinstance(parent, ActorSystem) else (
        parent.system if isinstance(parent, Context) else None
    )
    if system is not None and system.engine is None:
        raise _no_engine(what, system.name)


class PersistentCore(Behaviour, Generic[S]):
    """Recovery, the persist path and the snapshot points of one persistent actor."""

    retry_on_conflict = False
    """Re-run a command once after recovering from a concurrency conflict (see above)."""

    max_batch = 1
    """The most commands handled as one batch (1: one at a time; ``actors/batching.py``)."""

    pipeline = False
    """With batching: decide the next batch while the append of the one before is in flight
    (``actors/batching.py``, *Pipelining*)."""

    def __init__(
        self,
        persistence_id: str,
        *,
        codec: EventCodec[Any],
        tags_for: Callable[[Any], Iterable[str]],
        snapshotter: Snapshotter[S],
    ) -> None:
        if not isinstance(persistence_id, str) or not persistence_id:
            raise ValueError(f"persistence_id must be a non-empty string, got {persistence_id!r}")
        self.persistence_id = persistence_id
        self.codec = codec
        self.snapshotter = snapshotter
        self._tags_for = tags_for
        self.state: S = cast(S, None)
        self.recovering = True
        self.replay_sequence_nr = 0
        self.last_recovery: RecoveryReport | None = None
        self.journal: Journal | None = None
        self.recovered = False
        self.pctx: PersistentContext[S] | None = None
        self.activation: placement.Activation | None = None
        """The lease this actor runs under (cluster placement only)."""
        self.batch: Batch | None = None
        """The batch being decided (command batching only): persist stages into it."""
        self.writing: asyncio.Task[None] | None = None
        """The append of the batch before :attr:`batch`, in flight (pipelining only)."""
        self.in_flight_events = 0
        """Events of that append: numbered, folded, not durable yet (pipelining only)."""
        self.write_failed: BaseException | None = None
        """What an append of the current pipelined run failed with (pipelining only)."""
        self._restored_size = 0

    # -- what each API supplies ------------------------------------------------------------

    @abstractmethod
    def initial(self) -> S:
        """The state before any event."""

    @abstractmethod
    def decode_state(self, payload: Json, version: int) -> S:
        """The state from a snapshot's JSON form (or its
        :class:`~actors.snapshots.BinarySnapshot`) written at ``version``."""

    @abstractmethod
    async def replay_one(self, state: S, event: Any, ctx: PersistentContext[S]) -> S:
        """Fold one replayed event into the state."""

    @abstractmethod
    async def recovery_complete(self) -> None:
        """Run once the state is rebuilt, before the first command."""

    @abstractmethod
    async def handle(self, msg: object, ctx: PersistentContext[S]) -> None:
        """Handle one command."""

    @abstractmethod
    def after_write(self, events: Sequence[Any], stored: Sequence[StoredEvent]) -> None:
        """Apply freshly durable events, asking the snapshotter after each (class API)."""

    @abstractmethod
    def after_stage(self, events: Sequence[Any], staged: Sequence[NewEvent], batch: Batch) -> None:
        """Apply events just staged in ``batch`` (class API), numbered after
        :attr:`sequence_nr`; the snapshotter is asked once the batch is durable."""

    # -- life cycle ------------------------------------------------------------------------

    @property
    def sequence_nr(self) -> int:
        """That of the last event folded into the state: replayed, durable, in the append in
        flight (pipelining), or staged in the batch being decided (durable before any reply
        that depends on it is sent)."""
        if self.recovering:
            return self.replay_sequence_nr
        journal = self.journal
        if journal is None:
            return 0
        batch = self.batch
        folded = journal.sequence_nr + self.in_flight_events
        return folded if batch is None else folded + len(batch.staged)

    def bind(self, ctx: Context) -> PersistentContext[S]:
        """The context handlers get for this call (the runtime's one for this message)."""
        pctx = PersistentContext.of(ctx, self)
        self.pctx = pctx
        return pctx

    async def started(self, ctx: Context) -> None:
        if self.activation is None and ctx.system.placement is not None:
            self.activation = await placement.begin(ctx, self.persistence_id)
            if self.activation is None:
                return  # refused: stopping, and nothing was read
        await self.recover(self.bind(ctx))

    async def recover(self, ctx: PersistentContext[S]) -> None:
        """Rebuild the state from the latest usable snapshot and the events after it."""
        engine = engine_of(ctx, f"persistent actor {self.persistence_id!r}")
        if self.journal is None or self.journal.engine is not engine:
            self.journal = Journal(engine, self.persistence_id)
        self.journal.fence = self.activation.fence if self.activation is not None else None
        self.recovered = False
        self.recovering = True
        self.replay_sequence_nr = 0
        self._restored_size = 0
        self.pctx = ctx.with_sender(None)  # replayed events have no sender to reply to
        state, report = await recover(
            engine,
            self.persistence_id,
            initial=self.initial,
            restore=self._restore,
            apply=self._apply_stored,
        )
        self.pctx = ctx
        self.state = state
        self.journal.reset(report.sequence_nr)
        self.snapshotter.recovered(
            engine, ctx.system.snapshots, report.snapshot_sequence_nr, self._restored_size
        )
        self.recovering = False
        self.recovered = True
        self.last_recovery = report
        ctx.system.metrics.observe_replay(report.seconds, report.events_replayed)
        await self.recovery_complete()

    def _restore(self, snapshot: Snapshot) -> S:
        where = f"snapshot of {self.persistence_id!r}"
        state_payload, version = unwrap_snapshot(snapshot.payload, where, snapshot.blob)
        state = self.decode_state(state_payload, version)
        self._restored_size = self.snapshotter.measure(state)
        return state

    async def _apply_stored(self, state: S, stored: StoredEvent) -> S:
        where = f"event #{stored.sequence_nr} of {self.persistence_id!r}"
        event = self.codec.decode(stored.type, stored.version, stored.payload, where)
        self.replay_sequence_nr = stored.sequence_nr
        self.state = state
        assert self.pctx is not None
        return await self.replay_one(state, event, self.pctx)

    async def receive(self, msg: object, ctx: Context) -> None:
        pctx = self.bind(ctx)
        activation = self.activation
        if activation is not None and not activation.serving():
            placement.lose(ctx, activation, placement.NOT_SERVING)
            return
        if not self.recovered or self.journal is None or self.journal.uncertain:
            # resumed after a failed recovery, a conflict or an ambiguous write:
            # the journal is the truth again before any command
            await self.recover(pctx)
        snapshotter = self.snapshotter
        try:
            if self.max_batch > 1:
                await batching.run_batch(self, msg, pctx)
            else:
                await self._run_one(msg, pctx)
        except LeaseLost:
            if activation is None or not activation.lost:
                raise
            return  # stopping; the query fails with ActivationLost, not as a fault
        if snapshotter.owed:
            await snapshotter.command_done(self.sequence_nr, self.state)

    async def _run_one(self, msg: object, ctx: PersistentContext[S]) -> None:
        """Handle one command; each of its persists is written before it returns."""
        self.snapshotter.deferral = None
        written_before = self.sequence_nr
        try:
            await self.handle(msg, ctx)
        except ConcurrencyConflict:
            if not self.retry_on_conflict or self.sequence_nr != written_before:
                raise  # off, or the command already wrote: re-running would write it twice
            await self._retry(msg, ctx)

    async def _retry(self, msg: object, ctx: PersistentContext[S]) -> None:
        """Recover and run ``msg`` once more (its first run met a conflict before writing
        anything); a second conflict before it wrote anything is :class:`ConflictPersists`."""
        ctx.system.metrics.conflict_retries += 1
        await self.recover(ctx)
        self.snapshotter.deferral = None
        written_before = self.sequence_nr
        try:
            await self.handle(msg, ctx)
        except ConcurrencyConflict as again:
            if self.sequence_nr != written_before:
                raise
            raise ConflictPersists(self.persistence_id, again) from again

    def reset(self) -> None:
        self.state = cast(S, None)
        self.recovered = False
        self.recovering = True
        self.replay_sequence_nr = 0
        if self.journal is not None:
            self.journal.reset(0)

    async def stopped(self, ctx: Context, unprocessed: list[object]) -> None:
        """Snapshot on stop (if enabled), from a state known to match the journal; then
        release the lease, whatever the reason of the stop."""
        activation, self.activation = self.activation, None
        try:
            if (
                self.recovered
                and self.journal is not None
                and not self.journal.uncertain
                and (activation is None or not activation.lost)
            ):
                await self.snapshotter.stopping(
                    self.sequence_nr, self.state, within=ctx.system.snapshot_drain_timeout
                )
        finally:
            if activation is not None:
                await placement.end(ctx, activation)

    def default_decision(self, msg: object, error: BaseException) -> Decision:
        """Reset (recover from the journal) after a command's fault; stop if recovery failed.

        A conflict, a failed write or a bug in a handler never leaves a stale state behind:
        the journal holds every acknowledged event, so recovering loses nothing. A fault
        during recovery would fail again the same way, so the actor stops instead of looping.
        """
        if msg is None and not isinstance(error, ConcurrencyConflict):
            return Decision.STOP
        return Decision.RESET

    # -- the persist path --------------------------------------------------------------------

    async def persist_all(self, events: list[Any], ctx: PersistentContext[S]) -> None:
        if self.recovering:
            raise CalledDuringRecovery(
                f"{self.persistence_id!r}: persist called during recovery; replayed events are "
                f"already in the journal (check ctx.recovering)"
            )
        if not events:
            return
        journal = self.journal
        if journal is None:
            raise ActorNotStarted(f"{self.persistence_id!r}: persist called before recovery")
        encoded = self._encode(events)
        batch = self.batch
        if batch is not None:
            self._stage(events, encoded, batch)
            return
        stored = await self.write(encoded, ctx)
        try:
            self.after_write(events, stored)
        except BaseException:
            journal.uncertain = True  # durable but not applied: recover before going on
            raise
        if self.snapshotter.captured is not None:
            await self.snapshotter.flush()

    def _encode(self, events: list[Any]) -> list[NewEvent]:
        encoded = []
        encode = self.codec.encode
        tags_for = self._tags_for
        for event in events:
            form = encode(event)
            given = tags_for(event)
            if given == () or given == _NO_TAGS:  # the common case: no set to build or check
                tags = _NO_TAGS
            else:
                tags = frozenset(given)
                if not all(isinstance(tag, str) and tag for tag in tags):
                    raise ValueError(f"tags_for must give non-empty strings, got {list(tags)!r}")
            encoded.append(NewEvent(form.type, form.payload, form.version, tags))
        return encoded

    def _stage(self, events: list[Any], encoded: list[NewEvent], batch: Batch) -> None:
        """Stage events in the open batch: checked storable now unless the codec vouches
        for them (so a bad payload fails its own command, not the batch), then folded."""
        folds_as_written = self.codec.folds_as_written
        first = self.sequence_nr + 1
        for index, event in enumerate(events):
            if not folds_as_written(event):
                encoded[index] = batching.normal_payload(
                    encoded[index], self.persistence_id, first + index
                )
        batch.stage(encoded)
        try:
            self.after_stage(events, encoded, batch)
        except BaseException:
            assert self.journal is not None
            self.journal.uncertain = True  # staged but not applied: written, then recovered
            raise

    async def write(self, events: list[NewEvent], ctx: PersistentContext[S]) -> list[StoredEvent]:
        """Append ``events`` through the journal (the fence with them); a lost lease stops
        the activation."""
        journal = self.journal
        assert journal is not None
        try:
            stored = await journal.write(events)
        except LeaseLost as lost:
            if self.activation is not None:
                placement.lose(ctx, self.activation, str(lost))
            raise
        ctx.system.metrics.observe_persist(journal.last_write_seconds, len(stored))
        return stored

    # -- the explicit snapshot ---------------------------------------------------------------

    async def snapshot_now(self) -> bool:
        """``ctx.snapshot()``: snapshot the current state now (see ``actors/snapshots.py``)."""
        if self.recovering:
            raise CalledDuringRecovery(
                f"{self.persistence_id!r}: snapshot() called during recovery"
            )
        batch = self.batch
        if batch is not None and batch.staged and self.pctx is not None:
            # what the batch staged must be durable before a snapshot may include it
            sender = self.pctx.sender
            await batching.commit(self, batch, self.pctx)
            batch.senders.append(sender)  # the command goes on: its later events may fail
        if self.journal is None or self.journal.uncertain:
            refused = SnapshotRefused(
                f"{self.persistence_id!r}: the state may not match the journal after a failed "
                f"write; no snapshot until the actor recovered"
            )
            self.snapshotter.failed(refused, self.sequence_nr)
            return False
        return await self.snapshotter.take(self.sequence_nr, self.state)
