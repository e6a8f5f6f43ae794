"""The functional API of persistent actors (nact style): :func:`spawn_persistent`.

One handler ``(state, msg, ctx) -> new_state`` handles commands and, while
``ctx.recovering``, replays the journaled messages. The machinery is
``actors/persistent_core.py``'s; since the state is only known once the handler returns, the
snapshot strategy is asked once per command that persisted, with the returned state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from actors.batching import Batch, check_max_batch, check_pipeline
from actors.context import Context
from actors.persistent_context import PersistentContext
from actors.persistent_core import PersistentCore, maybe_await, require_engine
from actors.snapshot_strategies import SnapshotStrategy, SnapshotWhen, strategy_from
from actors.snapshots import Snapshotter
from actors.supervision import Decision
from actors.system import Parent, spawn_behaviour
from actors.upcasting import EventCodec, JsonEvents
from persistence.engine import Json, NewEvent, StoredEvent

if TYPE_CHECKING:
    from actors.ref import ActorRef

PersistentHandler = Callable[[Any, Any, PersistentContext[Any]], Any]
"""``(state, msg, ctx) -> new_state``, sync or async; also called with replayed messages."""

CrashHandler = Callable[[object, BaseException, PersistentContext[Any]], Any]


def _identity(value: Any) -> Any:
    return value


class _FunctionalBehaviour(PersistentCore[Any]):
    """Runs a nact-style handler: it folds replayed messages itself (``ctx.recovering``)."""

    def __init__(
        self,
        handler: PersistentHandler,
        persistence_id: str,
        *,
        initial_state: Any,
        initial_state_func: Callable[[], Any] | None,
        events: EventCodec[Any],
        decode_snapshot: Callable[[Json], Any] | None,
        tags_for: Callable[[Any], Iterable[str]] | None,
        on_crash: CrashHandler | None,
        snapshotter: Snapshotter[Any],
    ) -> None:
        super().__init__(
            persistence_id,
            codec=events,
            tags_for=tags_for or (lambda _event: ()),
            snapshotter=snapshotter,
        )
        self.handler = handler
        self._initial_state = initial_state
        self._initial_state_func = initial_state_func
        self._decode = decode_snapshot
        self._on_crash = on_crash

    def initial(self) -> Any:
        if self._initial_state_func is not None:
            return self._initial_state_func()
        return self._initial_state

    def decode_state(self, payload: Json, version: int) -> Any:
        return self._decode(payload) if self._decode is not None else payload

    async def replay_one(self, state: Any, event: Any, ctx: PersistentContext[Any]) -> Any:
        return await maybe_await(self.handler(state, event, ctx))

    async def recovery_complete(self) -> None:
        return None

    async def handle(self, msg: object, ctx: PersistentContext[Any]) -> None:
        journal = self.journal
        assert journal is not None
        before = self.sequence_nr
        try:
            state = await maybe_await(self.handler(self.state, msg, ctx))
        except BaseException:
            if self.sequence_nr != before:
                journal.uncertain = True  # persisted but the handler never returned a state
            raise
        self.state = state
        after = self.sequence_nr
        if after != before:
            batch = self.batch
            if batch is not None:  # asked once the batch is durable
                batch.mark(after, state, msg)
            else:
                self.snapshotter.consider(after, state, msg)
                await self.snapshotter.flush()

    def after_write(self, events: Sequence[Any], stored: Sequence[StoredEvent]) -> None:
        return None  # the handler's return value is the new state; snapshots follow it

    def after_stage(self, events: Sequence[Any], staged: Sequence[NewEvent], batch: Batch) -> None:
        return None

    async def on_crash(self, msg: object, error: BaseException, ctx: Context) -> Decision:
        if self._on_crash is not None:
            decision = await maybe_await(self._on_crash(msg, error, self.bind(ctx)))
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
    snapshot_when: SnapshotWhen[Any] | None = None,
    snapshot_strategy: SnapshotStrategy[Any] | None = None,
    snapshot_in_background: bool = False,
    snapshot_on_stop: bool = False,
    snapshot_view: Callable[[Any], Any] | None = None,
    encode_snapshot: Callable[[Any], Json | Awaitable[Json]] | None = None,
    decode_snapshot: Callable[[Json], Any] | None = None,
    events: EventCodec[Any] | None = None,
    tags_for: Callable[[Any], Iterable[str]] | None = None,
    shutdown_after: float | None = None,
    on_crash: CrashHandler | None = None,
    on_snapshot_failure: Callable[[BaseException, int], None] | None = None,
    retry_on_conflict: bool = False,
    max_batch: int = 1,
    pipeline: bool = False,
) -> ActorRef:
    """Spawn a nact-style persistent actor.

    ``handler(state, msg, ctx) -> new_state`` is called with every command, and with every
    replayed message while ``ctx.recovering`` is True (it must not persist then). It calls
    ``await ctx.persist(msg)`` to journal a message before acting on it. ``events`` is the
    codec (JSON values with an optional ``"type"`` key by default; pass
    ``JsonEvents(upcasters)`` to evolve their schema). With ``snapshot_every=N`` the state a
    handler returns is snapshotted whenever its persists crossed a multiple of N; the other
    ``snapshot_*`` settings are the class API's (see ``actors/snapshots.py``), and so is
    ``retry_on_conflict`` (see ``actors/persistent_core.py``), ``max_batch`` (command
    batching, off at 1) and ``pipeline`` (see ``actors/batching.py``).
    """
    if snapshot_strategy is not None and (snapshot_every is not None or snapshot_when):
        raise ValueError("pass snapshot_strategy or snapshot_every / snapshot_when, not both")
    snapshotter: Snapshotter[Any] = Snapshotter(
        persistence_id,
        strategy=snapshot_strategy or strategy_from(snapshot_every, snapshot_when),
        version=1,
        view=snapshot_view or _identity,
        encode=encode_snapshot or _identity,
        on_failure=on_snapshot_failure,
        in_background=snapshot_in_background,
        on_stop=snapshot_on_stop,
    )
    behaviour = _FunctionalBehaviour(
        handler,
        persistence_id,
        initial_state=initial_state,
        initial_state_func=initial_state_func,
        events=events if events is not None else JsonEvents(),
        decode_snapshot=decode_snapshot,
        tags_for=tags_for,
        on_crash=on_crash,
        snapshotter=snapshotter,
    )
    behaviour.retry_on_conflict = retry_on_conflict
    behaviour.max_batch = check_max_batch(max_batch)
    behaviour.pipeline = check_pipeline(pipeline)
    require_engine(parent, f"persistent actor {persistence_id!r}")
    return spawn_behaviour(parent, behaviour, name, shutdown_after=shutdown_after)
