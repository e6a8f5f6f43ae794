"""One instance's placement in the cluster: the lease store and its membership, as the actor
runtime asks for them.

:class:`ClusterPlacement` has the shape of :class:`actors.Placement` (``acquire``,
``release``, ``serving``) without importing the runtime (arrows go one way: ``actors`` ->
``persistence``); the runtime takes it structurally. It adds no rule of its own:

* ``acquire`` is :meth:`PlacementStore.acquire` for this instance, refused without I/O
  (:class:`~persistence.errors.MembershipLost`) once :meth:`Membership.serving` is False;
* ``release`` is :meth:`PlacementStore.release` (a lease no longer held is ignored: it was
  taken over, and the new owner's epoch is untouched);
* ``serving`` is :meth:`Membership.serving`: a local check, no I/O.

A process that lost its membership registers anew under a new instance id and builds a new
``ClusterPlacement`` (and a new actor system): "dead is dead" holds for the whole instance.
"""

from __future__ import annotations

from persistence.errors import MembershipLost
from persistence.leases import HeldElsewhere, Lease
from persistence.placement.membership import Membership
from persistence.placement.store import PlacementStore


class ClusterPlacement:
    """Placement of the persistent actors of the instance ``membership`` renews."""

    def __init__(self, store: PlacementStore, membership: Membership) -> None:
        self.store = store
        self.membership = membership

    @property
    def instance_id(self) -> str:
        return self.membership.instance_id

    async def acquire(self, persistence_id: str) -> Lease | HeldElsewhere:
        """This instance's lease of ``persistence_id``, or the live instance holding it."""
        if not self.membership.serving():
            raise MembershipLost(
                self.instance_id, self.membership.reason or "its local deadline has passed"
            )
        return await self.store.acquire(persistence_id, self.instance_id)

    async def release(self, lease: Lease) -> None:
        await self.store.release(lease)

    def serving(self) -> bool:
        return self.membership.serving()
