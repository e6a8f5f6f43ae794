"""Cluster placement in the runtime: an activation of a persistent actor *is* a lease.

``ActorSystem(name, engine=..., placement=p)`` runs its persistent actors under ``p``, a
:class:`Placement` (``None``, the default: one process, no leases, today's behaviour). The
storage side, the lease table and the fence, is :mod:`persistence.placement` (see
``docs/cluster.md``); this module holds everything the runtime does with it, and no SQL.

Invariants (each tested in ``tests/actors/test_placement.py``, on an in-memory lease table
and on PostgreSQL):

1. **Lease before state.** A persistent actor's ``started()`` acquires its lease (key: its
   persistence id) before recovery, so the journal it replays already holds every write of
   the previous owner: a takeover commits only after that owner's fenced writes in flight.
2. **Every write is fenced.** Every append (``actors/journal.py``) carries the lease as its
   fence; storage refuses it in the write's own transaction once the lease is not held.
3. **Refused activations never run.** If another live instance holds the lease, the actor
   stops at once, without recovering and without asking its supervisor (no restart loop),
   and every query to it fails with :class:`~actors.errors.ActivationElsewhere` naming the
   owner and its address. Routine in a cluster, so logged at DEBUG, not as a fault.
4. **A lost activation answers nothing from memory.** When a fenced write is refused
   (:class:`~persistence.errors.LeaseLost`), or ``placement.serving()`` is False when a
   message is about to be delivered, the actor stops without its supervisor being asked;
   the query it was handling, and every queued or later query to it, fails with
   :class:`~actors.errors.ActivationLost`, and a reply it tries to send is dropped.
5. **Membership lost stops everything.** The system asks ``serving()`` every
   ``placement_check_interval`` seconds and, once it is False, stops every activation as in
   4 (:meth:`ActorSystem.lose_activations <actors.system.ActorSystem.lose_activations>`).
6. **Every way out releases.** Passivation, a fault that stops the actor, a stop, system
   shutdown: the lease is released in ``stopped()``, after the last write and the snapshot
   on stop. A reset in place (supervision's RESET) keeps the lease: same owner, same epoch.
   A lost lease is not released (it is no longer ours to release).
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Protocol, TypeAlias

from actors.errors import ActivationElsewhere, ActivationLost, ActorError
from persistence.errors import MembershipLost
from persistence.leases import HeldElsewhere, Lease

if TYPE_CHECKING:
    from collections.abc import Callable

    from actors.cell import Cell
    from actors.context import Context

_log = logging.getLogger("actors.placement")

Elsewhere: TypeAlias = HeldElsewhere
"""What :meth:`Placement.acquire` answers when another live instance holds the lease: its
``owner`` id, ``epoch``, ``address`` (``None``: takes no forwarded request) and whether it
is ``draining``."""

NOT_SERVING = "this instance stopped serving (its membership in the cluster was lost)"


class Placement(Protocol):
    """Where persistent actors may be active: one instance's view of the cluster.

    :class:`persistence.placement.ClusterPlacement` (PostgreSQL) and
    :class:`persistence.placement.memory.InMemoryPlacement` (one process) implement it.
    """

    async def acquire(self, persistence_id: str) -> Lease | Elsewhere:
        """This instance's lease of ``persistence_id`` (a takeover if the owner expired,
        the same lease if already held here), or the live instance that holds it. Raises
        :class:`~persistence.errors.MembershipLost` if this instance may take no user."""
        ...

    async def release(self, lease: Lease) -> None:
        """Give ``lease`` up (a lease no longer held is ignored)."""
        ...

    def serving(self) -> bool:
        """Whether this instance may still answer from memory: a local check, no I/O."""
        ...


Refusal: TypeAlias = "Callable[[], ActorError]"
"""Makes the error a refused or lost activation's queries fail with (one per query)."""


class Activation:
    """The lease of one persistent actor's activation, from ``started()`` to ``stopped()``."""

    __slots__ = ("lease", "lost", "persistence_id", "placement")

    def __init__(self, placement: Placement, persistence_id: str) -> None:
        self.placement = placement
        self.persistence_id = persistence_id
        self.lease: Lease | None = None
        self.lost = False
        """True once the lease is known lost (refused write, not serving): never again
        answer from memory, never release."""

    @property
    def fence(self) -> Lease | None:
        """The lease every write of this activation carries."""
        return self.lease

    def serving(self) -> bool:
        return not self.lost and self.placement.serving()

    async def acquire(self) -> Refusal | None:
        """Take the lease; ``None`` once held, else why this activation may not run."""
        pid = self.persistence_id
        if not self.placement.serving():
            return functools.partial(ActivationLost, pid, NOT_SERVING)
        try:
            got = await self.placement.acquire(pid)
        except MembershipLost as error:
            return functools.partial(ActivationLost, pid, str(error))
        if isinstance(got, HeldElsewhere):
            return functools.partial(
                ActivationElsewhere, pid, got.owner, got.address, draining=got.draining
            )
        self.lease = got
        return None

    async def release(self) -> None:
        """Give the lease up, unless it was lost; a failure is logged, never raised (the
        lease then frees itself when this instance's registration expires)."""
        lease, self.lease = self.lease, None
        if lease is None or self.lost:
            return
        try:
            await self.placement.release(lease)
        except Exception as error:
            _log.warning("releasing the lease of %r failed: %s", lease.key, error)


def refuse(cell: Cell, refusal: Refusal) -> None:
    """Stop ``cell`` without asking its supervisor; its queries, queued and later ones,
    fail with ``refusal()``."""
    if cell.refusal is None:
        cell.refusal = refusal
    cell.request_stop()


async def begin(ctx: Context, persistence_id: str) -> Activation | None:
    """Invariants 1 and 3: the activation holding its lease, or ``None`` after the actor
    was refused (stopping, its queries failing with the reason)."""
    placement = ctx.system.placement
    if placement is None:
        return None
    activation = Activation(placement, persistence_id)
    refusal = await activation.acquire()
    if refusal is not None:
        error = refusal()
        ctx.system.metrics.activations_refused += 1
        _log.debug("not activating %s here: %s", ctx.path, error)
        refuse(ctx._cell, refusal)
        return None
    ctx.system.activations[ctx._cell] = activation
    return activation


def lose(ctx: Context, activation: Activation, reason: str) -> None:
    """Invariant 4: the activation's lease is gone; stop it, answer nothing more."""
    if activation.lost:
        return
    activation.lost = True
    ctx.system.metrics.activations_lost += 1
    _log.warning("activation %s lost: %s", ctx.path, reason)
    refuse(ctx._cell, functools.partial(ActivationLost, activation.persistence_id, reason))


async def end(ctx: Context, activation: Activation) -> None:
    """Invariant 6: the actor stopped (its last write done): release the lease; it leaves
    ``system.activations`` once released."""
    try:
        await activation.release()
    finally:
        ctx.system.activations.pop(ctx._cell, None)
