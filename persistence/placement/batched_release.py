"""Coalesced lease release: the leases given up together share one statement.

Every activation releases its lease when it stops (passivation, a stop, system shutdown).
A shutdown stops every user at once, and one short transaction per lease on the store's
pool of three connections queued thousands of releases behind each other: on a busy
machine the later ones waited past the pool's timeout and failed (their leases then stayed
held until the instance's registration expired, delaying whoever needed those users next).
:class:`BatchedRelease` gathers the concurrent releases
(:class:`~persistence.postgres.coalescing.Coalescer`, one queue for the store) and gives
them up with :data:`RELEASE`, one statement.

Its effect is that of the one-key release for every lease of the batch: a row is changed
only if its key is still held by that lease's owner at that lease's epoch (re-checked on
the row's newest version once it is locked, under READ COMMITTED), its owner then set to
``NULL`` and its epoch kept. A lease taken over meanwhile is left alone and reported as no
longer held. Rows are locked in key order, as the batched acquire locks them, so the two
queue rather than deadlock; should a lock wait still time out or deadlock, nothing of the
batch was written and each lease is released the one-key way.

Failures: a statement that fails otherwise fails every caller of the batch, each with its
own :class:`~persistence.errors.StorageUnavailable` naming its key (or
:class:`~persistence.errors.SchemaError`), as the one-key release would.
"""

from __future__ import annotations

from collections.abc import Hashable

from psycopg import errors as pg_errors
from psycopg import sql

from persistence.leases import Lease
from persistence.placement.batched_acquire import Connect, LimitLocks
from persistence.postgres.coalescing import Coalescer, batch_failure
from persistence.postgres.placement_tables import PlacementNames

MAX_BATCH_KEYS = 1_000
"""Leases one statement releases at most: a bound on the rows one transaction locks."""

MAX_IN_FLIGHT = 1
"""Release statements running at once: releases are never urgent, and the pool's other
connections stay free for acquisitions."""

RELEASE = """\
WITH req AS (
    SELECT * FROM unnest(%(keys)s::text[], %(owners)s::text[], %(epochs)s::bigint[])
        AS r(key, owner, epoch)
),
locked AS (
    SELECT l.key FROM {lease} l
    JOIN req r ON l.key = r.key AND l.owner = r.owner AND l.epoch = r.epoch
    ORDER BY l.key COLLATE "C"
    FOR UPDATE OF l
)
UPDATE {lease} l SET owner = NULL
FROM locked, req r
WHERE l.key = locked.key AND r.key = l.key AND l.owner = r.owner AND l.epoch = r.epoch
RETURNING l.key"""
"""One row per lease released (its key); a lease no longer held as given is absent."""


class BatchedRelease:
    """:meth:`PlacementStore.release <persistence.placement.store.PlacementStore.release>`
    for many concurrent leases per statement; ``None`` for a lease it leaves to the one-key
    path (a lock wait timed out or deadlocked)."""

    def __init__(
        self,
        connect: Connect,
        limit_locks: LimitLocks,
        names: PlacementNames,
        *,
        max_batch_keys: int = MAX_BATCH_KEYS,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self._connect = connect
        self._limit_locks = limit_locks
        self._statement = sql.SQL(RELEASE).format(lease=names.lease)
        self._batches: Coalescer[Lease, bool | None] = Coalescer(
            self._run,
            _failure,
            what="lease release",
            max_in_flight=max_in_flight,
            max_weight=max_batch_keys,
        )

    @property
    def batches(self) -> int:
        """How many release statements returned (for benchmarks and tests)."""
        return self._batches.batches

    async def release(self, lease: Lease) -> bool | None:
        """Whether ``lease`` was released (False: no longer held as given), or ``None`` if
        its batch left it to the one-key path."""
        return await self._batches.submit(lease)

    async def wait_idle(self) -> None:
        """Wait until every queued release has been answered (before the pools close)."""
        await self._batches.wait_idle()

    async def _run(self, _: Hashable, leases: list[Lease]) -> list[bool | None]:
        params = {
            "keys": [lease.key for lease in leases],
            "owners": [lease.owner for lease in leases],
            "epochs": [lease.epoch for lease in leases],
        }
        async with self._connect(f"release the leases of {len(leases)} keys") as conn:
            try:
                async with conn.transaction():
                    await self._limit_locks(conn)
                    cur = await conn.execute(self._statement, params)
                    released = {key for (key,) in await cur.fetchall()}
            except (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected):
                return [None] * len(leases)
        return [lease.key in released for lease in leases]


def _failure(lease: Lease, _: Hashable, exc: BaseException) -> BaseException:
    return batch_failure(f"release the lease of {lease.key!r}", exc)
