"""The class API of persistent actors: subclass :class:`PersistentActor`, spawn with
:func:`spawn_actor`.

The machinery (recovery, persist path, snapshot points) is ``actors/persistent_core.py``'s;
this module only maps a ``PersistentActor``'s hooks onto it. Snapshot settings are class
attributes (or set in ``__init__``) and hooks, all documented in ``actors/snapshots.py``:
``snapshot_strategy`` (or the shorthands ``snapshot_every`` / ``snapshot_when``),
``snapshot_in_background``, ``snapshot_on_stop``, ``snapshot_version``,
:meth:`PersistentActor.snapshot_view`, :meth:`PersistentActor.encode_snapshot` (sync or async)
and :meth:`PersistentActor.decode_snapshot`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from actors.batching import Batch, check_max_batch, check_pipeline
from actors.behaviour import Behaviour
from actors.context import Context
from actors.persistent_context import PersistentContext
from actors.persistent_core import PersistentCore, maybe_await, require_engine
from actors.snapshot_strategies import SnapshotStrategy, strategy_from
from actors.snapshots import Snapshotter
from actors.supervision import Decision
from actors.system import Parent, spawn_behaviour
from actors.upcasting import EventCodec, JsonEvents, Upcasters
from persistence.engine import Json, NewEvent, StoredEvent

if TYPE_CHECKING:
    from actors.durable_state import DurableStateActor
    from actors.ref import ActorRef

S = TypeVar("S")

log = logging.getLogger("actors.persistent")


class PersistentActor(ABC, Generic[S]):
    """An event-sourced actor in the style of actor-ts: commands in, events persisted, state
    folded from events by :meth:`on_event`, which must be pure (it also runs during replay).

    Subclass it, set ``persistence_id`` (class attribute or in ``__init__``), and spawn an
    instance with :func:`spawn_actor`. ``events`` is the event codec (a
    :class:`~actors.upcasting.DataclassEvents` registry, or JSON values by default) and holds
    the upcasters.

    Snapshots: ``snapshot_strategy`` decides when one is due (by default none, or the
    strategy of ``snapshot_every`` and an overridden :meth:`snapshot_when`);
    ``snapshot_in_background`` captures at a command's end and saves in a task the system
    owns; ``snapshot_on_stop`` snapshots a stopping actor that is behind. See
    ``actors/snapshots.py`` for the exact semantics.
    """

    persistence_id: str
    snapshot_every: int | None = None
    snapshot_strategy: SnapshotStrategy[Any] | None = None
    snapshot_in_background: bool = False
    snapshot_on_stop: bool = False
    snapshot_version: int = 1
    retry_on_conflict: bool = False
    """Recover and re-run a command once when its persist meets a concurrency conflict
    (another writer appended): see ``actors/persistent_core.py``."""
    max_batch: int = 1
    """Command batching: the most queued commands handled as one batch, with one journal
    write and their replies held until it is durable; 1 (the default) handles one command
    at a time. Handlers stay as they are; see ``actors/batching.py`` for the semantics."""
    pipeline: bool = False
    """With ``max_batch`` > 1: decide the next batch while the append of the one before is
    in flight, so a busy actor's work and its database round trips overlap; the replies,
    the journal and the failures stay those of one batch at a time (``actors/batching.py``,
    *Pipelining*)."""
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
        """Whether to snapshot right after ``event`` (in addition to ``snapshot_every``);
        asked only if overridden and ``snapshot_strategy`` is not set."""
        return False

    def snapshot_view(self, state: S) -> Any:
        """What a snapshot captures, synchronously, at the point it is taken: the state
        itself by default. With an async :meth:`encode_snapshot` it must not change when the
        state does later (e.g. a copy of a list of immutable items)."""
        return state

    def encode_snapshot(self, view: Any) -> Json | Awaitable[Json]:
        """The JSON form (a value, or JSON text as ``str``) of :meth:`snapshot_view`'s view,
        or a :class:`~actors.snapshots.BinarySnapshot` (bytes, stored as the engine's blob);
        the default stores it as it is. May be ``async``: it then runs after the capture (in
        the background with ``snapshot_in_background``) and may yield to the event loop."""
        return view

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


def _strategy_of(actor: PersistentActor[S]) -> SnapshotStrategy[S] | None:
    """``snapshot_strategy``, or the one of ``snapshot_every`` / ``snapshot_when``."""
    own_when = type(actor).snapshot_when is not PersistentActor.snapshot_when
    if actor.snapshot_strategy is not None:
        if actor.snapshot_every is not None or own_when:
            raise ValueError(
                f"{type(actor).__qualname__}: set snapshot_strategy or snapshot_every / "
                f"snapshot_when, not both"
            )
        return actor.snapshot_strategy
    return strategy_from(actor.snapshot_every, actor.snapshot_when if own_when else None)


class _ActorBehaviour(PersistentCore[S]):
    """Runs a :class:`PersistentActor` instance."""

    def __init__(self, actor: PersistentActor[S]) -> None:
        persistence_id = getattr(actor, "persistence_id", None)
        if not isinstance(persistence_id, str) or not persistence_id:
            raise ValueError(
                f"{type(actor).__qualname__}.persistence_id must be a non-empty string, "
                f"got {persistence_id!r}"
            )
        snapshotter = Snapshotter(
            persistence_id,
            strategy=_strategy_of(actor),
            version=actor.snapshot_version,
            view=actor.snapshot_view,
            encode=actor.encode_snapshot,
            on_failure=actor.on_snapshot_failure,
            in_background=actor.snapshot_in_background,
            on_stop=actor.snapshot_on_stop,
        )
        super().__init__(
            persistence_id, codec=actor.codec, tags_for=actor.tags_for, snapshotter=snapshotter
        )
        self.actor = actor
        self.retry_on_conflict = actor.retry_on_conflict
        self.max_batch = check_max_batch(actor.max_batch)
        self.pipeline = check_pipeline(actor.pipeline)

    def initial(self) -> S:
        return self.actor.initial_state()

    def decode_state(self, payload: Json, version: int) -> S:
        return self.actor.decode_snapshot(payload, version)

    async def replay_one(self, state: S, event: Any, ctx: PersistentContext[S]) -> S:
        return self.actor.on_event(state, event)

    async def recovery_complete(self) -> None:
        await maybe_await(self.actor.on_recovery_complete(self.state))

    async def handle(self, msg: object, ctx: PersistentContext[S]) -> None:
        await maybe_await(self.actor.on_command(self.state, msg, ctx))

    def after_write(self, events: Sequence[Any], stored: Sequence[StoredEvent]) -> None:
        snapshotter = self.snapshotter
        ask = snapshotter.consider if snapshotter.strategy is not None else None
        self._fold(events, stored, stored[0].sequence_nr, ask)

    def after_stage(self, events: Sequence[Any], staged: Sequence[NewEvent], batch: Batch) -> None:
        ask = batch.mark if self.snapshotter.strategy is not None else None
        self._fold(events, staged, self.sequence_nr - len(staged) + 1, ask)

    def _fold(
        self,
        events: Sequence[Any],
        written: Sequence[StoredEvent | NewEvent],
        first_sequence_nr: int,
        ask: Callable[[int, S, Any], None] | None,
    ) -> None:
        """Fold ``events`` (numbered from ``first_sequence_nr``) into the state, calling
        ``ask`` (the snapshot strategy's question) after each."""
        state = self.state
        codec = self.codec
        on_event = self.actor.on_event
        for number, (given, form) in enumerate(zip(events, written, strict=True),
                                               start=first_sequence_nr):
            if codec.folds_as_written(given):
                event = given
            else:  # fold what the journal holds, decoded as replay will: live == recovered
                where = f"event #{number} of {self.persistence_id!r}"
                event = codec.decode(form.type, form.version, form.payload, where)
            state = on_event(state, event)
            self.state = state
            if ask is not None:
                ask(number, state, event)

    async def on_crash(self, msg: object, error: BaseException, ctx: Context) -> Decision:
        decision = await maybe_await(self.actor.on_crash(msg, error, self.bind(ctx)))
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
