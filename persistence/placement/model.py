"""What the placement store answers: registrations, renewals, leases and the cluster's status.

Two clocks appear here and are never compared: ``datetime`` values come from the database
(``now()``), the one clock that judges liveness; ``local_deadline`` values are this
process's :func:`time.monotonic`, used only to stop serving in time (see
:attr:`Registration.local_deadline`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from persistence.leases import HeldElsewhere, Lease

__all__ = [
    "ClusterStatus",
    "HeldElsewhere",
    "InstanceStatus",
    "Lease",
    "Registration",
    "Renewal",
]

DEFAULT_TTL = 6.0
"""Seconds an instance stays live after its last renewal (database clock). After a kill -9
its users are taken over by others within this, plus one request's retry: under 10 s."""

RENEW_FRACTION = 1 / 3
"""Renew every third of the TTL: two renewals may fail before the registration expires."""

SELF_FENCE_MARGIN = 0.1
"""Fraction of the TTL an instance keeps in hand: it stops serving this much before the
earliest moment the database can judge it expired, to absorb clock-rate drift and the time
it takes to stop its activations."""


@dataclass(frozen=True, slots=True)
class Registration:
    """One instance, as registered or renewed."""

    instance_id: str
    address: str | None
    ttl: float
    started_at: datetime
    expires_at: datetime
    """When the database will judge this instance expired, unless renewed before."""
    local_deadline: float
    """``time.monotonic()`` until which this process may serve its users: the moment its
    last successful renewal was *sent*, plus the TTL less :data:`SELF_FENCE_MARGIN`. The
    database stamped that renewal no earlier than it was sent, so nobody can take a user
    over before this deadline has passed here."""


@dataclass(frozen=True, slots=True)
class Renewal:
    """The answer to a heartbeat."""

    valid: bool
    """False once the registration has expired or is gone: it will never be valid again."""
    expires_at: datetime | None
    local_deadline: float | None


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """One row of ``contacts cluster status``."""

    instance_id: str
    address: str | None
    started_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    live: bool
    draining: bool
    heartbeat_age: float
    """Seconds since the last renewal, by the database's clock."""
    users: int
    """Leases it holds (for an expired instance: users waiting to be taken over)."""
    takeovers_last_hour: int
    """Users it took over from expired instances in the last hour."""


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    database_time: datetime
    instances: list[InstanceStatus]
    takeovers_last_hour: int
