"""Placement in one process's memory: the lease table of the in-memory engine.

The same rules as :class:`~persistence.placement.store.PlacementStore`, with this process's
monotonic clock standing in for the database's: instances register with a TTL and are live
until it runs out unless renewed ("dead is dead": an expired registration is never
renewed); a key's lease is free, held by a live owner, or held by an expired one (taken
over, epoch + 1); the epoch of a key never goes down. :meth:`InMemoryLeases.holds` is the
fence: :class:`~persistence.memory.InMemoryEngine` built with ``leases=`` refuses a fenced
append whose lease it does not hold, inside the same lock as the write, so a takeover (a
plain method call, which cannot interleave with that critical section) always sees the
write complete or not started.

It exists for tests and demos of the cluster's runtime side without PostgreSQL, and is a
real implementation, not a stub: the actors' placement tests run against it and against the
PostgreSQL store alike. :class:`InMemoryPlacement` is one instance's view, the shape the
actor runtime takes (``acquire``, ``release``, ``serving``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from persistence.errors import MembershipLost
from persistence.placement.model import DEFAULT_TTL, HeldElsewhere, Lease


@dataclass(slots=True)
class _Instance:
    address: str | None
    ttl: float
    expires_at: float
    draining: bool = False


@dataclass(slots=True)
class _LeaseRow:
    owner: str | None
    epoch: int
    acquired_at: datetime


class InMemoryLeases:
    """Instances and leases of one process; ``clock`` (monotonic seconds) judges liveness."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._instances: dict[str, _Instance] = {}
        self._leases: dict[str, _LeaseRow] = {}
        self.takeovers = 0
        """How many leases were taken from an expired owner."""

    # -- membership --------------------------------------------------------------------------

    def register(
        self,
        address: str | None = None,
        *,
        ttl: float = DEFAULT_TTL,
        instance_id: str | None = None,
    ) -> str:
        """A new live instance's id (never reused)."""
        if not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
        instance_id = instance_id or uuid.uuid4().hex
        if instance_id in self._instances:
            raise ValueError(f"instance {instance_id!r} is already registered (ids are not reused)")
        self._instances[instance_id] = _Instance(address, ttl, self._clock() + ttl)
        return instance_id

    def live(self, instance_id: str) -> bool:
        instance = self._instances.get(instance_id)
        return instance is not None and instance.expires_at > self._clock()

    def heartbeat(self, instance_id: str) -> bool:
        """Renew a live instance; False (for good) once it expired or is gone."""
        if not self.live(instance_id):
            return False
        instance = self._instances[instance_id]
        instance.expires_at = self._clock() + instance.ttl
        return True

    def expire(self, instance_id: str) -> None:
        """Judge the instance expired now, as a kill -9 or a long pause would after its TTL."""
        instance = self._instances.get(instance_id)
        if instance is not None:
            instance.expires_at = min(instance.expires_at, self._clock())

    def drain(self, instance_id: str) -> None:
        """The instance keeps its users but takes no new one."""
        if instance_id in self._instances:
            self._instances[instance_id].draining = True

    def deregister(self, instance_id: str) -> int:
        """Release every lease of ``instance_id`` and forget it; the number released."""
        freed = 0
        for row in self._leases.values():
            if row.owner == instance_id:
                row.owner = None
                freed += 1
        self._instances.pop(instance_id, None)
        return freed

    # -- leases ------------------------------------------------------------------------------

    def acquire(self, key: str, instance_id: str) -> Lease | HeldElsewhere:
        """As :meth:`persistence.placement.store.PlacementStore.acquire`."""
        me = self._instances.get(instance_id)
        if me is None or not self.live(instance_id) or me.draining:
            reason = "not registered" if me is None else "draining" if me.draining else "expired"
            raise MembershipLost(instance_id, reason)
        now = datetime.now(UTC)
        row = self._leases.get(key)
        if row is None:
            self._leases[key] = _LeaseRow(instance_id, 1, now)
            return Lease(key, instance_id, 1, now)
        if row.owner == instance_id:
            return Lease(key, instance_id, row.epoch, row.acquired_at)
        previous = row.owner
        if previous is not None and self.live(previous):
            owner = self._instances[previous]
            return HeldElsewhere(key, previous, row.epoch, owner.address, owner.draining)
        row.owner, row.epoch, row.acquired_at = instance_id, row.epoch + 1, now
        if previous is not None:
            self.takeovers += 1
        return Lease(key, instance_id, row.epoch, now, taken_over_from=previous)

    def release(self, lease: Lease) -> bool:
        """Give ``lease`` up; False if it was no longer held. The epoch stays."""
        row = self._leases.get(lease.key)
        if row is None or row.owner != lease.owner or row.epoch != lease.epoch:
            return False
        row.owner = None
        return True

    def holds(self, lease: Lease) -> bool:
        """The fence: ``lease`` is the key's current lease and its owner is live."""
        row = self._leases.get(lease.key)
        return (
            row is not None
            and row.owner == lease.owner
            and row.epoch == lease.epoch
            and self.live(lease.owner)
        )

    def owner_of(self, key: str) -> str | None:
        row = self._leases.get(key)
        return row.owner if row is not None else None

    def placement(self, instance_id: str) -> InMemoryPlacement:
        """The actor runtime's view of this table for one registered instance."""
        return InMemoryPlacement(self, instance_id)


class InMemoryPlacement:
    """One instance's placement over an :class:`InMemoryLeases` table: what
    :class:`actors.Placement` asks for (``acquire``, ``release``, ``serving``)."""

    def __init__(self, leases: InMemoryLeases, instance_id: str) -> None:
        self.leases = leases
        self.instance_id = instance_id

    async def acquire(self, persistence_id: str) -> Lease | HeldElsewhere:
        return self.leases.acquire(persistence_id, self.instance_id)

    async def release(self, lease: Lease) -> None:
        self.leases.release(lease)

    def serving(self) -> bool:
        return self.leases.live(self.instance_id)
