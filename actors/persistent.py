"""Persistent actors: the class API (``PersistentActor`` + ``spawn_actor``) and the functional
API (``spawn_persistent``), both one :class:`~actors.behaviour.Behaviour` on ``spawn_behaviour``.

Recovery runs in ``started()``, so the cell's mailbox holds (stashes) every command that arrives
meanwhile, and a handler awaiting ``ctx.persist`` holds it until the write is durable. The
journal (``actors/journal.py``) advances the sequence number only after the engine confirms;
recovery (``actors/recovery.py``) loads the latest usable snapshot and streams the rest.
"""

from __future__ import annotations

import inspect
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar, cast

from actors.behaviour import Behaviour
from actors.context import Context
from actors.journal import Journal
from actors.recovery import RecoveryReport, recover
from actors.snapshots import SnapshotSchedule, check_snapshot_every, unwrap_snapshot, wrap_snapshot
from actors.supervision import Decision
from actors.system import ActorSystem, Parent, spawn_behaviour
from actors.upcasting import EventCodec, JsonEvents, Upcasters
from persistence.engine import Engine, Json, NewEvent, StoredEvent
from persistence.errors import ConcurrencyConflict, JournalIntegrityError

if TYPE_CHECKING:
    from actors.durable_state import DurableStateActor
    from actors.ref import ActorRef

S = TypeVar("S")

log = logging.getLogger("actors.persistent")

__all__ = [
    "JournalIntegrityError",
    "NoEngineConfigured",
    "PersistentActor",
    "PersistentContext",
    "RecoveryReport",
    "spawn_actor",
    "spawn_persistent",
]


_NO_TAGS: frozenset[str] = frozenset()


class NoEngineConfigured(RuntimeError):
    """A persistent or durable-state actor started in a system created without an engine."""


async def _maybe_await(value: object) -> Any:
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


class PersistentContext(Context, Generic[S]):
    """What a persistent actor's handlers get: the runtime context plus persistence.

    During recovery (``recovering`` is True) there is no sender: replies go nowhere.
    """

    __slots__ = ("_pcore",)
    _pcore: _PersistentCore[S]

    @classmethod
    def of(cls, ctx: Context, core: _PersistentCore[S]) -> PersistentContext[S]:
        """The persistent context of ``core``'s actor for the runtime context ``ctx``."""
        new: PersistentContext[S] = cls.from_context(ctx)
        new._pcore = core
        return new

    def with_sender(self, sender: ActorRef | None) -> Self:
        new = super().with_sender(sender)
        new._pcore = self._pcore
        return new

    @property
    def persistence_id(self) -> str:
        return self._pcore.persistence_id

    @property
    def state(self) -> S:
        """The current state: after every event persisted so far (or replayed, in recovery)."""
        return self._pcore.state

    @property
    def sequence_nr(self) -> int:
        """The sequence number of the last durable event (of the one replayed, in recovery)."""
        return self._pcore.sequence_nr

    @property
    def recovering(self) -> bool:
        return self._pcore.recovering

    @property
    def last_recovery(self) -> RecoveryReport | None:
        return self._pcore.last_recovery

    async def persist(self, event: Any) -> None:
        """Write ``event`` to the journal; return once it is durable (and, in the class API,
        folded into ``ctx.state`` by ``on_event``). On any error nothing was applied."""
        await self._pcore.persist_all([event], self)

    async def persist_all(self, events: Iterable[Any]) -> None:
        """Write ``events`` atomically (all or none), each with its own tags; return as
        :meth:`persist` does."""
        await self._pcore.persist_all(list(events), self)

    async def snapshot(self) -> bool:
        """Save a snapshot of the current state now; False (and the failure hook) if it failed."""
        core = self._pcore
        if core.recovering:
            raise RuntimeError(f"{core.persistence_id!r}: snapshot() called during recovery")
        if core.journal is None or core.journal.uncertain:
            stale = RuntimeError(
                f"{core.persistence_id!r}: the state may not match the journal after a failed "
                f"write; no snapshot until the actor recovered"
            )
            core.snapshot_failed(stale, core.sequence_nr)
            return False
        payload = core.encode_snapshot_payload(core.sequence_nr, core.state)
        if payload is None:
            return False
        return await core.save_snapshot(core.sequence_nr, payload)


class _PersistentCore(Behaviour, Generic[S]):
    """The machinery both APIs share: recovery, the persist path, snapshots, metrics."""

    def __init__(
        self,
        persistence_id: str,
        *,
        codec: EventCodec[Any],
        schedule: SnapshotSchedule[S],
        snapshot_version: int,
        tags_for: Callable[[Any], Iterable[str]],
        on_snapshot_failure: Callable[[BaseException, int], None] | None,
    ) -> None:
        if not isinstance(persistence_id, str) or not persistence_id:
            raise ValueError(f"persistence_id must be a non-empty string, got {persistence_id!r}")
        self.persistence_id = persistence_id
        self.codec = codec
        self.schedule = schedule
        self.snapshot_version = snapshot_version
        self._tags_for = tags_for
        self._on_snapshot_failure = on_snapshot_failure
        self.state: S = cast(S, None)
        self.recovering = True
        self.replay_sequence_nr = 0
        self.last_recovery: RecoveryReport | None = None
        self.journal: Journal | None = None
        self.recovered = False
        self.pctx: PersistentContext[S] | None = None

    # -- what each API supplies ------------------------------------------------------------

    @abstractmethod
    def initial(self) -> S:
        """The state before any event."""

    @abstractmethod
    def encode_state(self, state: S) -> Json:
        """The JSON form of ``state`` for a snapshot."""

    @abstractmethod
    def decode_state(self, payload: Json, version: int) -> S:
        """The state from a snapshot's JSON form written at ``version``."""

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
    def after_write(self, events: Sequence[Any], stored: Sequence[StoredEvent]) -> tuple[
        int, Json
    ] | None:
        """Apply freshly durable events; return a snapshot due right now as (seq, payload)."""

    # -- life cycle ------------------------------------------------------------------------

    @property
    def sequence_nr(self) -> int:
        if self.recovering:
            return self.replay_sequence_nr
        return self.journal.sequence_nr if self.journal is not None else 0

    def bind(self, ctx: Context) -> PersistentContext[S]:
        """The context handlers get for this call (the runtime's one for this message)."""
        pctx = PersistentContext.of(ctx, self)
        self.pctx = pctx
        return pctx

    async def started(self, ctx: Context) -> None:
        await self.recover(self.bind(ctx))

    async def recover(self, ctx: PersistentContext[S]) -> None:
        """Rebuild the state from the latest usable snapshot and the events after it."""
        engine = engine_of(ctx, f"persistent actor {self.persistence_id!r}")
        if self.journal is None or self.journal.engine is not engine:
            self.journal = Journal(engine, self.persistence_id)
        self.recovered = False
        self.recovering = True
        self.replay_sequence_nr = 0
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
        self.recovering = False
        self.recovered = True
        self.last_recovery = report
        ctx.system.metrics.observe_replay(report.seconds, report.events_replayed)
        await self.recovery_complete()

    def _restore(self, payload: Json) -> S:
        where = f"snapshot of {self.persistence_id!r}"
        state_payload, version = unwrap_snapshot(payload, where)
        return self.decode_state(state_payload, version)

    async def _apply_stored(self, state: S, stored: StoredEvent) -> S:
        where = f"event #{stored.sequence_nr} of {self.persistence_id!r}"
        event = self.codec.decode(stored.type, stored.version, stored.payload, where)
        self.replay_sequence_nr = stored.sequence_nr
        self.state = state
        assert self.pctx is not None
        return await self.replay_one(state, event, self.pctx)

    async def receive(self, msg: object, ctx: Context) -> None:
        pctx = self.bind(ctx)
        if not self.recovered or self.journal is None or self.journal.uncertain:
            # resumed after a failed recovery, a conflict or an ambiguous write:
            # the journal is the truth again before any command
            await self.recover(pctx)
        await self.handle(msg, pctx)

    def reset(self) -> None:
        self.state = cast(S, None)
        self.recovered = False
        self.recovering = True
        self.replay_sequence_nr = 0
        if self.journal is not None:
            self.journal.reset(0)

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
            raise RuntimeError(
                f"{self.persistence_id!r}: persist called during recovery; replayed events are "
                f"already in the journal (check ctx.recovering)"
            )
        if not events:
            return
        journal = self.journal
        if journal is None:
            raise RuntimeError(f"{self.persistence_id!r}: persist called before recovery")
        batch = []
        encode = self.codec.encode
        tags_for = self._tags_for
        for event in events:
            encoded = encode(event)
            given = tags_for(event)
            if given == () or given == _NO_TAGS:  # the common case: no set to build or check
                tags = _NO_TAGS
            else:
                tags = frozenset(given)
                if not all(isinstance(tag, str) and tag for tag in tags):
                    raise ValueError(f"tags_for must give non-empty strings, got {list(tags)!r}")
            batch.append(NewEvent(encoded.type, encoded.payload, encoded.version, tags))
        stored = await journal.write(batch)
        ctx.system.metrics.observe_persist(journal.last_write_seconds, len(stored))
        try:
            due = self.after_write(events, stored)
        except BaseException:
            journal.uncertain = True  # durable but not applied: recover before going on
            raise
        if due is not None:
            await self.save_snapshot(*due)

    # -- snapshots -------------------------------------------------------------------------

    def encode_snapshot_payload(self, sequence_nr: int, state: S) -> Json | None:
        """The stored snapshot payload of ``state``; None (and the hook) if it cannot be made."""
        try:
            return wrap_snapshot(
                self.encode_state(state),
                self.snapshot_version,
                f"snapshot of {self.persistence_id!r} at sequence_nr {sequence_nr}",
            )
        except Exception as exc:
            self.snapshot_failed(exc, sequence_nr)
            return None

    async def save_snapshot(self, sequence_nr: int, payload: Json) -> bool:
        assert self.journal is not None
        try:
            await self.journal.engine.save_snapshot(self.persistence_id, sequence_nr, payload)
        except Exception as exc:
            self.snapshot_failed(exc, sequence_nr)
            return False
        return True

    def snapshot_failed(self, error: BaseException, sequence_nr: int) -> None:
        hook = self._on_snapshot_failure
        if hook is None:
            log.warning(
                "snapshot of %r at sequence_nr %d failed: %s",
                self.persistence_id, sequence_nr, error,
            )
            return
        try:
            hook(error, sequence_nr)
        except Exception:
            log.exception("on_snapshot_failure of %r raised", self.persistence_id)


# -- the class API ---------------------------------------------------------------------------


class PersistentActor(ABC, Generic[S]):
    """An event-sourced actor in the style of actor-ts: commands in, events persisted, state
    folded from events by :meth:`on_event`, which must be pure (it also runs during replay).

    Subclass it, set ``persistence_id`` (class attribute or in ``__init__``), and spawn an
    instance with :func:`spawn_actor`. ``events`` is the event codec (a
    :class:`~actors.upcasting.DataclassEvents` registry, or JSON values by default) and holds
    the upcasters.
    """

    persistence_id: str
    snapshot_every: int | None = None
    snapshot_version: int = 1
    events: EventCodec[Any] | None = None

    @abstractmethod
    def initial_state(self) -> S:
        """The state before any event (and with no snapshot)."""

    @abstractmethod
    def on_event(self, state: S, event: Any) -> S:
        """The state after ``event``: pure, runs after each persist and during replay."""

    @abstractmethod
    async def on_command(self, state: S, command: Any, ctx: PersistentContext[S]) -> None:
        """Handle one command: validate, ``await ctx.persist(event)``, then reply."""

    def on_recovery_complete(self, state: S) -> Awaitable[None] | None:
        """Called once recovery rebuilt ``state``, before the first command."""
        return None

    def tags_for(self, event: Any) -> Iterable[str]:
        """The tags stored with ``event`` (for ``events_by_tag`` readers)."""
        return ()

    def snapshot_when(self, sequence_nr: int, state: S, event: Any) -> bool:
        """Whether to snapshot right after ``event`` (in addition to ``snapshot_every``)."""
        return False

    def encode_snapshot(self, state: S) -> Json:
        """The JSON form of ``state``; the default stores the state as it is."""
        return state

    def decode_snapshot(self, payload: Json, version: int) -> S:
        """The state from :meth:`encode_snapshot`'s output, written at ``snapshot_version``."""
        return cast(S, payload)

    def on_crash(
        self, msg: object, error: BaseException, ctx: PersistentContext[S]
    ) -> Decision | Awaitable[Decision] | None:
        """The supervision decision; ``None`` keeps the default (reset, or stop if recovery
        itself failed)."""
        return None

    def on_snapshot_failure(self, error: BaseException, sequence_nr: int) -> None:
        """A snapshot could not be saved; the actor goes on. The default logs a warning."""
        log.warning(
            "snapshot of %r at sequence_nr %d failed: %s", self.persistence_id, sequence_nr, error
        )

    @property
    def upcasters(self) -> Upcasters:
        return self.codec.upcasters

    @property
    def codec(self) -> EventCodec[Any]:
        if self.events is None:
            self.events = JsonEvents()
        return self.events


class _ActorBehaviour(_PersistentCore[S]):
    """Runs a :class:`PersistentActor` instance."""

    def __init__(self, actor: PersistentActor[S]) -> None:
        persistence_id = getattr(actor, "persistence_id", None)
        if not isinstance(persistence_id, str) or not persistence_id:
            raise ValueError(
                f"{type(actor).__qualname__}.persistence_id must be a non-empty string, "
                f"got {persistence_id!r}"
            )
        super().__init__(
            persistence_id,
            codec=actor.codec,
            schedule=SnapshotSchedule(
                check_snapshot_every(actor.snapshot_every), actor.snapshot_when
            ),
            snapshot_version=actor.snapshot_version,
            tags_for=actor.tags_for,
            on_snapshot_failure=actor.on_snapshot_failure,
        )
        self.actor = actor

    def initial(self) -> S:
        return self.actor.initial_state()

    def encode_state(self, state: S) -> Json:
        return self.actor.encode_snapshot(state)

    def decode_state(self, payload: Json, version: int) -> S:
        return self.actor.decode_snapshot(payload, version)

    async def replay_one(self, state: S, event: Any, ctx: PersistentContext[S]) -> S:
        return self.actor.on_event(state, event)

    async def recovery_complete(self) -> None:
        await _maybe_await(self.actor.on_recovery_complete(self.state))

    async def handle(self, msg: object, ctx: PersistentContext[S]) -> None:
        await _maybe_await(self.actor.on_command(self.state, msg, ctx))

    def after_write(
        self, events: Sequence[Any], stored: Sequence[StoredEvent]
    ) -> tuple[int, Json] | None:
        due: tuple[int, Json] | None = None
        state = self.state
        codec = self.codec
        on_event = self.actor.on_event
        for given, written in zip(events, stored, strict=True):
            if codec.folds_as_written(given):
                event = given
            else:  # fold what the journal holds, decoded as replay will: live == recovered
                where = f"event #{written.sequence_nr} of {self.persistence_id!r}"
                event = codec.decode(written.type, written.version, written.payload, where)
            state = on_event(state, event)
            self.state = state
            if self.schedule.due(written.sequence_nr, state, event):
                payload = self.encode_snapshot_payload(written.sequence_nr, state)
                if payload is not None:
                    due = (written.sequence_nr, payload)
        return due

    async def on_crash(self, msg: object, error: BaseException, ctx: Context) -> Decision:
        decision = await _maybe_await(self.actor.on_crash(msg, error, self.bind(ctx)))
        return decision if decision is not None else self.default_decision(msg, error)


def spawn_actor(
    parent: Parent,
    actor: PersistentActor[Any] | DurableStateActor[Any],
    name: str | None = None,
    *,
    shutdown_after: float | None = None,
) -> ActorRef:
    """Spawn a :class:`PersistentActor` (or a DurableStateActor) instance under ``parent``."""
    from actors.durable_state import DurableStateActor, DurableStateBehaviour

    behaviour: Behaviour
    if isinstance(actor, PersistentActor):
        behaviour = _ActorBehaviour(actor)
        what = f"persistent actor {actor.persistence_id!r}"
    elif isinstance(actor, DurableStateActor):
        behaviour = DurableStateBehaviour(actor)
        what = f"durable-state actor {actor.key!r}"
    else:
        raise TypeError(
            f"spawn_actor needs a PersistentActor or DurableStateActor, got "
            f"{type(actor).__qualname__}"
        )
    require_engine(parent, what)
    return spawn_behaviour(parent, behaviour, name, shutdown_after=shutdown_after)


# -- the functional API ----------------------------------------------------------------------

PersistentHandler = Callable[[Any, Any, PersistentContext[Any]], Any]
"""``(state, msg, ctx) -> new_state``, sync or async; also called with replayed messages."""

CrashHandler = Callable[[object, BaseException, PersistentContext[Any]], Any]


class _FunctionalBehaviour(_PersistentCore[Any]):
    """Runs a nact-style handler: it folds replayed messages itself (``ctx.recovering``)."""

    def __init__(
        self,
        handler: PersistentHandler,
        persistence_id: str,
        *,
        initial_state: Any,
        initial_state_func: Callable[[], Any] | None,
        schedule: SnapshotSchedule[Any],
        events: EventCodec[Any],
        encode_snapshot: Callable[[Any], Json] | None,
        decode_snapshot: Callable[[Json], Any] | None,
        tags_for: Callable[[Any], Iterable[str]] | None,
        on_crash: CrashHandler | None,
        on_snapshot_failure: Callable[[BaseException, int], None] | None,
    ) -> None:
        super().__init__(
            persistence_id,
            codec=events,
            schedule=schedule,
            snapshot_version=1,
            tags_for=tags_for or (lambda _event: ()),
            on_snapshot_failure=on_snapshot_failure,
        )
        self.handler = handler
        self._initial_state = initial_state
        self._initial_state_func = initial_state_func
        self._encode = encode_snapshot
        self._decode = decode_snapshot
        self._on_crash = on_crash

    def initial(self) -> Any:
        if self._initial_state_func is not None:
            return self._initial_state_func()
        return self._initial_state

    def encode_state(self, state: Any) -> Json:
        return self._encode(state) if self._encode is not None else state

    def decode_state(self, payload: Json, version: int) -> Any:
        return self._decode(payload) if self._decode is not None else payload

    async def replay_one(self, state: Any, event: Any, ctx: PersistentContext[Any]) -> Any:
        return await _maybe_await(self.handler(state, event, ctx))

    async def recovery_complete(self) -> None:
        return None

    async def handle(self, msg: object, ctx: PersistentContext[Any]) -> None:
        journal = self.journal
        assert journal is not None
        before = journal.sequence_nr
        try:
            state = await _maybe_await(self.handler(self.state, msg, ctx))
        except BaseException:
            if journal.sequence_nr != before:
                journal.uncertain = True  # persisted but the handler never returned a state
            raise
        self.state = state
        after = journal.sequence_nr
        if self.schedule.crossed(before, after, state, msg):
            payload = self.encode_snapshot_payload(after, state)
            if payload is not None:
                await self.save_snapshot(after, payload)

    def after_write(
        self, events: Sequence[Any], stored: Sequence[StoredEvent]
    ) -> tuple[int, Json] | None:
        return None  # the handler's return value is the new state; snapshots follow it

    async def on_crash(self, msg: object, error: BaseException, ctx: Context) -> Decision:
        if self._on_crash is not None:
            decision = await _maybe_await(self._on_crash(msg, error, self.bind(ctx)))
            if decision is not None:
                return cast(Decision, decision)
        return self.default_decision(msg, error)


def spawn_persistent(
    parent: Parent,
    handler: PersistentHandler,
    persistence_id: str,
    name: str | None = None,
    *,
    initial_state: Any = None,
    initial_state_func: Callable[[], Any] | None = None,
    snapshot_every: int | None = None,
    snapshot_when: Callable[[int, Any, Any], bool] | None = None,
    encode_snapshot: Callable[[Any], Json] | None = None,
    decode_snapshot: Callable[[Json], Any] | None = None,
    events: EventCodec[Any] | None = None,
    tags_for: Callable[[Any], Iterable[str]] | None = None,
    shutdown_after: float | None = None,
    on_crash: CrashHandler | None = None,
    on_snapshot_failure: Callable[[BaseException, int], None] | None = None,
) -> ActorRef:
    """Spawn a nact-style persistent actor.

    ``handler(state, msg, ctx) -> new_state`` is called with every command, and with every
    replayed message while ``ctx.recovering`` is True (it must not persist then). It calls
    ``await ctx.persist(msg)`` to journal a message before acting on it. ``events`` is the
    codec (JSON values with an optional ``"type"`` key by default; pass
    ``JsonEvents(upcasters)`` to evolve their schema). With ``snapshot_every=N`` the state a
    handler returns is snapshotted whenever its persists crossed a multiple of N.
    """
    behaviour = _FunctionalBehaviour(
        handler,
        persistence_id,
        initial_state=initial_state,
        initial_state_func=initial_state_func,
        schedule=SnapshotSchedule(check_snapshot_every(snapshot_every), snapshot_when),
        events=events if events is not None else JsonEvents(),
        encode_snapshot=encode_snapshot,
        decode_snapshot=decode_snapshot,
        tags_for=tags_for,
        on_crash=on_crash,
        on_snapshot_failure=on_snapshot_failure,
    )
    require_engine(parent, f"persistent actor {persistence_id!r}")
    return spawn_behaviour(parent, behaviour, name, shutdown_after=shutdown_after)
