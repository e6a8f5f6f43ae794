"""Cluster placement on PostgreSQL: one activation per user across processes and hosts.

Instances register and renew (:class:`PlacementStore`, :class:`Membership`); a user's actor
is active only where its :class:`Lease` is held; every write of that actor passes the
:mod:`fence <persistence.postgres.fence>` in its own transaction, so an instance that lost
the lease (paused, partitioned) can never land a late write. :class:`ClusterPlacement` is
what the actor runtime takes (``ActorSystem(..., placement=...)``);
:mod:`persistence.placement.memory` is the same in one process's memory, for tests and
demos. See ``docs/cluster.md``.
"""

from persistence.errors import LeaseLost, MembershipLost
from persistence.placement.cluster import ClusterPlacement
from persistence.placement.membership import Membership
from persistence.placement.model import (
    DEFAULT_TTL,
    ClusterStatus,
    HeldElsewhere,
    InstanceStatus,
    Lease,
    Registration,
    Renewal,
)
from persistence.placement.store import PlacementStore
from persistence.postgres.fence import check_fence, fence_cte, fence_params, stale_leases

__all__ = [
    "DEFAULT_TTL",
    "ClusterPlacement",
    "ClusterStatus",
    "HeldElsewhere",
    "InstanceStatus",
    "Lease",
    "LeaseLost",
    "Membership",
    "MembershipLost",
    "PlacementStore",
    "Registration",
    "Renewal",
    "check_fence",
    "fence_cte",
    "fence_params",
    "stale_leases",
]
