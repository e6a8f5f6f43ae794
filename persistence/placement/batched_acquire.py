"""Coalesced lease acquisition: concurrent acquires of one instance share one statement.

When an instance starts (or restarts) thousands of users at once, each activation first
acquires its lease. One short transaction per key, on a pool of three connections, made
acquisition the cold start's bottleneck. :class:`BatchedAcquire` gathers the concurrent
``acquire(key, instance_id)`` calls of one instance (for one event-loop turn, or while a
batch of that instance is in flight, as :mod:`persistence.postgres.recovery_reads` gathers
recovery reads) and settles the common cases with :data:`FAST_PATH`, one statement:

* the caller itself must be registered, live and not draining, judged in that statement by
  the database's clock; otherwise nothing is written and every caller of the batch gets
  :class:`~persistence.errors.MembershipLost`;
* a key never held is inserted at epoch 1 (``ON CONFLICT DO NOTHING``);
* a released key (``owner IS NULL``) is taken at ``epoch + 1`` by an ``UPDATE`` whose
  ``WHERE owner IS NULL`` READ COMMITTED re-checks on the row's newest version once it has
  the row lock: a key acquired by someone else meanwhile is left alone;
* a key the caller already owns is locked ``FOR UPDATE`` and returned unchanged, the
  ``owner = caller`` test re-checked the same way after the lock (a takeover that
  committed meanwhile drops it from the answer).

Every other key (held by another instance, live or expired; a fresh key whose insert lost
a race; a released key acquired meanwhile) is left unsettled, and its caller goes through
the store's one-key transaction unchanged (:meth:`PlacementStore.acquire_one
<persistence.placement.store.PlacementStore.acquire_one>`). So a takeover still happens
only there: the lease row locked ``FOR UPDATE``, the owner judged live or expired in a new
statement by the database's clock, only a positively expired owner taken over, at
``epoch + 1``, and logged. The fast path never changes a row another live instance owns:
its only writes are to rows absent or ``owner IS NULL`` (re-checked under the lock), and
to no row at all when the caller is not live. Its results are those of the one-key path:
a fresh key at epoch 1, a released key at its epoch + 1 (``previous_owner`` NULL, no
takeover record), an own key unchanged.

The statement runs in a transaction bounded like the one-key path's (``lock_timeout`` and
``idle_in_transaction_session_timeout``). Rows are inserted and locked in key order, so two
batches contending for the same keys queue rather than deadlock; should a lock wait still
time out or deadlock, nothing of the batch was written and every key goes the one-key way.

Failures: a statement that fails otherwise fails every caller still waiting in that batch,
in :mod:`persistence.errors`' vocabulary (a lost server or exhausted pool:
:class:`~persistence.errors.StorageUnavailable`; a missing table or column:
:class:`~persistence.errors.SchemaError`), each caller with its own error naming its key.
A caller that gives up (cancelled, timed out) leaves the batch unharmed. Its lease may
still have been acquired: as with a one-key acquire cancelled after its commit, the
instance owns it and its next acquire of that key returns it unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from contextlib import AbstractAsyncContextManager

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import TupleRow

from persistence.errors import MembershipLost
from persistence.leases import Lease
from persistence.postgres.coalescing import Coalescer, batch_failure
from persistence.postgres.placement_tables import PlacementNames

MAX_BATCH_KEYS = 1_000
"""Keys one statement settles at most: a bound on the rows one transaction locks."""

MAX_IN_FLIGHT = 2
"""Batches of one store running at once (its pool has three connections; the one-key
path of the keys a batch left unsettled needs one too)."""

FAST_PATH = """\
WITH me AS (
    SELECT expires_at > now() AS live, draining FROM {instance} WHERE id = %(me)s
),
req AS (
    SELECT DISTINCT k AS key FROM unnest(%(keys)s::text[]) AS k
    WHERE EXISTS (SELECT 1 FROM me WHERE live AND NOT draining)
),
fresh AS (
    INSERT INTO {lease} (key, owner, epoch, acquired_at)
    SELECT key, %(me)s, 1, now() FROM req ORDER BY key COLLATE "C"
    ON CONFLICT (key) DO NOTHING
    RETURNING key, epoch, acquired_at
),
locked AS (
    SELECT l.key, l.owner, l.epoch, l.acquired_at FROM {lease} l
    WHERE l.key IN (SELECT key FROM req) AND (l.owner IS NULL OR l.owner = %(me)s)
    ORDER BY l.key
    FOR UPDATE OF l
),
freed AS (
    UPDATE {lease} l SET owner = %(me)s, epoch = l.epoch + 1, acquired_at = now(),
                         previous_owner = NULL
    FROM locked
    WHERE l.key = locked.key AND locked.owner IS NULL AND l.owner IS NULL
    RETURNING l.key, l.epoch, l.acquired_at
),
own AS (
    SELECT key, epoch, acquired_at FROM locked WHERE owner = %(me)s
)
SELECT m.live, m.draining, r.key, r.epoch, r.acquired_at
FROM (SELECT 1) AS one
LEFT JOIN me m ON true
LEFT JOIN (
    SELECT * FROM fresh UNION ALL SELECT * FROM freed UNION ALL SELECT * FROM own
) r ON true"""
"""The caller's liveness (``NULL`` if not registered) on every row, then one row per
settled key: its epoch and acquisition time; a lone row with ``NULL`` key if none was
settled. ``locked`` takes the row locks in key order before ``freed`` updates any row; a
row locked after a concurrent change is re-checked and returned as it is now (READ
COMMITTED), so its owner, epoch and time are the current ones, not the snapshot's."""

Connect = Callable[[str], AbstractAsyncContextManager[psycopg.AsyncConnection[TupleRow]]]
"""The store's way to a pooled connection for an action (named in its errors)."""

LimitLocks = Callable[[psycopg.AsyncConnection[TupleRow]], Awaitable[None]]
"""Bounds the current transaction's lock waits and idle time, as the one-key path does."""


class BatchedAcquire:
    """The fast path of :meth:`PlacementStore.acquire
    <persistence.placement.store.PlacementStore.acquire>`, many concurrent keys per
    statement; ``None`` for a key it leaves to the one-key path. The batching itself is
    :class:`~persistence.postgres.coalescing.Coalescer`'s, one queue per instance."""

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
        self._statement = sql.SQL(FAST_PATH).format(instance=names.instance, lease=names.lease)
        self._batches: Coalescer[str, Lease | None] = Coalescer(
            self._run, _failure, what="lease acquisition",
            max_in_flight=max_in_flight, max_weight=max_batch_keys,
        )
        self.settled = 0
        """How many acquires those statements settled (the rest went the one-key way)."""

    @property
    def batches(self) -> int:
        """How many fast-path statements returned (for benchmarks and tests)."""
        return self._batches.batches

    async def acquire(self, key: str, instance_id: str) -> Lease | None:
        """``key``'s lease for ``instance_id`` if the next batch settles it, else ``None``."""
        return await self._batches.submit(key, instance_id)

    async def wait_idle(self) -> None:
        """Wait until every queued request has been answered (before the pools close)."""
        await self._batches.wait_idle()

    async def _run(self, instance_id: Hashable, keys: list[str]) -> list[Lease | None]:
        """Settle what one batch can in one statement: a lease, or ``None``, per key."""
        settled = await self._settle(str(instance_id), keys)
        self.settled += sum(1 for key in keys if key in settled)
        return [settled.get(key) for key in keys]

    async def _settle(self, instance_id: str, keys: list[str]) -> dict[str, Lease]:
        """The leases :data:`FAST_PATH` settled, by key (none if a lock wait failed)."""
        async with self._connect(f"acquire the leases of {len(keys)} keys") as conn:
            try:
                async with conn.transaction():
                    await self._limit_locks(conn)
                    cur = await conn.execute(self._statement, {"me": instance_id, "keys": keys})
                    rows = await cur.fetchall()
            except (pg_errors.LockNotAvailable, pg_errors.DeadlockDetected):
                return {}
        live, draining = rows[0][0], rows[0][1]
        if live is None or not live or draining:
            reason = "not registered" if live is None else "draining" if live else "expired"
            raise MembershipLost(instance_id, reason)
        return {
            key: Lease(key, instance_id, int(epoch), acquired_at)
            for _, _, key, epoch, acquired_at in rows
            if key is not None
        }


def _failure(key: str, instance_id: Hashable, exc: BaseException) -> BaseException:
    """The error one caller hears, its own instance naming its key."""
    if isinstance(exc, MembershipLost):
        return MembershipLost(str(instance_id), exc.reason)
    return batch_failure(f"acquire the lease of {key!r}", exc)
