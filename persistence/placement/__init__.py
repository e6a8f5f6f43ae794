"""Cluster placement on PostgreSQL: one activation per user across processes and hosts.

Instances register and renew (:class:`PlacementStore`, :class:`Membership`); a user's actor
is active only where its :class:`Lease` is held; every write of that actor passes the
:mod:`fence <persistence.placement.fence>` in its own transaction, so an instance that lost
the lease (paused, partitioned) can never land a late write. See ``docs/cluster.md``.
"""

from persistence.placement.errors import LeaseLost, MembershipLost
from persistence.placement.fence import check_fence, fence_cte, fence_params, stale_leases
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

__all__ = [
    "DEFAULT_TTL",
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
