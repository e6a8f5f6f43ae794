"""The context a persistent actor's handlers get: the runtime context plus persistence.

It is a thin view on the actor's :class:`~actors.persistent_core.PersistentCore`; every
operation is the core's (persist path) or its snapshotter's (snapshot path).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from actors.context import Context
from actors.snapshots import DEFAULT_MAX_DEFERRAL

if TYPE_CHECKING:
    from actors.persistent_core import PersistentCore
    from actors.recovery import RecoveryReport
    from actors.ref import ActorRef
    from actors.snapshot_strategies import LastSnapshot

S = TypeVar("S")


class PersistentContext(Context, Generic[S]):
    """What a persistent actor's handlers get: the runtime context plus persistence.

    During recovery (``recovering`` is True) there is no sender: replies go nowhere.
    """

    __slots__ = ("_pcore",)
    _pcore: PersistentCore[S]

    @classmethod
    def of(cls, ctx: Context, core: PersistentCore[S]) -> PersistentContext[S]:
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
        """The sequence number of the last durable event (of the one replayed, in recovery;
        of the last one staged, in a batch: durable before any reply is sent)."""
        return self._pcore.sequence_nr

    @property
    def recovering(self) -> bool:
        return self._pcore.recovering

    @property
    def last_recovery(self) -> RecoveryReport | None:
        return self._pcore.last_recovery

    @property
    def last_snapshot(self) -> LastSnapshot:
        """The latest snapshot taken or being saved (sequence_nr 0: none since recovery)."""
        return self._pcore.snapshotter.last

    def reply(self, value: object) -> None:
        """Send ``value`` to the sender, unless the activation was lost (cluster placement):
        then nothing is answered from memory; the query fails with ``ActivationLost``.

        In a batch (``max_batch``) the reply is held while events of the batch are staged
        and not yet durable, or (pipelining) while the append of the batch before is in
        flight, and sent once they are durable (``actors/batching.py``)."""
        core = self._pcore
        activation = core.activation
        if activation is not None and activation.lost:
            return
        batch = core.batch
        if batch is not None and (batch.staged or core.writing is not None):
            batch.hold(self.sender, value)
            return
        super().reply(value)

    async def persist(self, event: Any) -> None:
        """Write ``event`` to the journal; return once it is durable (and, in the class API,
        folded into ``ctx.state`` by ``on_event``). On any error nothing was applied.

        In a batch (``max_batch``) it returns once the event is staged (and folded): the
        batch writes it, and holds the replies until it is durable (``actors/batching.py``)."""
        await self._pcore.persist_all([event], self)

    async def persist_all(self, events: Iterable[Any]) -> None:
        """Write ``events`` atomically (all or none), each with its own tags; return as
        :meth:`persist` does."""
        await self._pcore.persist_all(list(events), self)

    async def snapshot(self) -> bool:
        """Save a snapshot of the current state now (after the one in flight, if any);
        False (and ``on_snapshot_failure``) if it failed."""
        return await self._pcore.snapshot_now()

    def defer_snapshot(self, max_deferral: int = DEFAULT_MAX_DEFERRAL) -> None:
        """More work of the same kind follows this command (e.g. the next chunk of an
        import): a snapshot falling due now waits for a command that does not defer, unless
        the journal is ``max_deferral`` events or more past the last snapshot."""
        self._pcore.snapshotter.defer(max_deferral)
