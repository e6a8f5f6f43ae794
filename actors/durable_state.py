"""Durable-state actors in the style of Francis: one JSON value per key, not an event log.

Every write names the revision it replaces (optimistic concurrency): if another writer got
there first, the actor reloads the current value and raises the
:class:`~persistence.errors.StateRevisionConflict`, never overwriting what it did not see. A
value written with a TTL reads as absent once it expires.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar, cast

from actors.behaviour import Behaviour
from actors.context import Context
from actors.errors import ActorNotStarted
from actors.persistent_core import engine_of, maybe_await
from actors.supervision import Decision
from persistence.engine import DurableState, Engine, Json
from persistence.errors import StateRevisionConflict

if TYPE_CHECKING:
    from actors.ref import ActorRef

S = TypeVar("S")

log = logging.getLogger("actors.durable_state")


class DurableStateContext(Context, Generic[S]):
    """What a durable-state actor's handler gets: the runtime context plus its stored value."""

    __slots__ = ("_b",)
    _b: DurableStateBehaviour[S]

    @classmethod
    def of(cls, ctx: Context, behaviour: DurableStateBehaviour[S]) -> DurableStateContext[S]:
        new: DurableStateContext[S] = cls.from_context(ctx)
        new._b = behaviour
        return new

    def with_sender(self, sender: ActorRef | None) -> Self:
        new = super().with_sender(sender)
        new._b = self._b
        return new

    @property
    def key(self) -> str:
        return self._b.key

    @property
    def revision(self) -> int:
        """The revision of the live value (0: absent or expired)."""
        current = self._b.live()
        return current.revision if current is not None else 0

    @property
    def expires_at(self) -> datetime | None:
        current = self._b.live()
        return current.expires_at if current is not None else None

    def get_state(self) -> S | None:
        """The current value, or None if there is none (never written, deleted or expired)."""
        current = self._b.live()
        return self._b.actor.decode_state(current.value) if current is not None else None

    async def set_state(self, value: S, ttl: float | None = None) -> int:
        """Write ``value`` over the revision this actor holds; return the new revision.

        Raises StateRevisionConflict (after reloading) if another writer changed it meanwhile.
        """
        return await self._b.set_state(value, ttl)

    async def delete_state(self) -> bool:
        """Delete the value; return whether there was a live one. Conflicts as set_state."""
        return await self._b.delete_state()

    async def reload(self) -> S | None:
        """Read the stored value again (e.g. after a conflict, or to see other writers)."""
        await self._b.load()
        return self.get_state()


class DurableStateActor(ABC, Generic[S]):
    """An actor whose state is one stored value: subclass, set ``key``, spawn with
    :func:`actors.persistent.spawn_actor`. Handlers read with ``ctx.get_state()`` and write
    with ``await ctx.set_state(value, ttl=None)`` / ``await ctx.delete_state()``.
    """

    key: str

    @abstractmethod
    async def on_command(self, command: Any, ctx: DurableStateContext[S]) -> None:
        """Handle one command."""

    def encode_state(self, value: S) -> Json:
        """The JSON form of ``value``; the default stores it as it is."""
        return value

    def decode_state(self, payload: Json) -> S:
        """The value from its JSON form."""
        return cast(S, payload)

    def on_state_loaded(self, value: S | None) -> None:
        """Called after the value was loaded on start (and on every reset)."""

    def on_crash(
        self, msg: object, error: BaseException, ctx: DurableStateContext[S]
    ) -> Decision | None:
        """The supervision decision; ``None`` keeps the default (reset: reload the value, or
        stop if the load itself failed)."""
        return None


class DurableStateBehaviour(Behaviour, Generic[S]):
    """Runs a :class:`DurableStateActor`: loads on start, checks revisions on every write."""

    def __init__(self, actor: DurableStateActor[S]) -> None:
        key = getattr(actor, "key", None)
        if not isinstance(key, str) or not key:
            raise ValueError(
                f"{type(actor).__qualname__}.key must be a non-empty string, got {key!r}"
            )
        self.actor = actor
        self.key = key
        self.current: DurableState | None = None
        self.engine: Engine | None = None
        self.loaded = False

    def live(self) -> DurableState | None:
        current = self.current
        if current is None:
            return None
        if current.expires_at is not None and current.expires_at <= datetime.now(UTC):
            return None
        return current

    def _engine(self) -> Engine:
        if self.engine is None:
            raise ActorNotStarted(f"durable state {self.key!r} used before its actor started")
        return self.engine

    async def load(self) -> None:
        self.current = await self._engine().get_state(self.key)

    async def set_state(self, value: S, ttl: float | None) -> int:
        engine = self._engine()
        current = self.live()
        expected = current.revision if current is not None else 0
        payload = self.actor.encode_state(value)
        try:
            self.current = await engine.upsert_state(self.key, payload, expected, ttl)
        except StateRevisionConflict:
            await self.load()
            raise
        return self.current.revision

    async def delete_state(self) -> bool:
        engine = self._engine()
        current = self.live()
        expected = current.revision if current is not None else 0
        try:
            existed = await engine.delete_state(self.key, expected_revision=expected)
        except StateRevisionConflict:
            await self.load()
            raise
        self.current = None
        return existed

    async def started(self, ctx: Context) -> None:
        self.loaded = False
        self.engine = engine_of(ctx, f"durable-state actor {self.key!r}")
        await self.load()
        self.loaded = True
        loaded = self.live()
        self.actor.on_state_loaded(
            self.actor.decode_state(loaded.value) if loaded is not None else None
        )

    async def receive(self, msg: object, ctx: Context) -> None:
        if not self.loaded:  # resumed after a failed start: load before any command
            await self.started(ctx)
        await maybe_await(self.actor.on_command(msg, DurableStateContext.of(ctx, self)))

    def reset(self) -> None:
        self.current = None
        self.loaded = False

    async def on_crash(self, msg: object, error: BaseException, ctx: Context) -> Decision:
        decision = self.actor.on_crash(msg, error, DurableStateContext.of(ctx, self))
        if decision is not None:
            return decision
        if isinstance(error, StateRevisionConflict):
            return Decision.RESUME  # already reloaded; the caller got the conflict
        return Decision.STOP if msg is None else Decision.RESET
