"""The placement store: instances register and renew, users' leases are acquired, taken
over and released, all in PostgreSQL, judged by the database's clock.

Liveness: an instance is live while ``expires_at > now()``; a renewal moves ``expires_at``
only while it is still live, so an expired registration is never revived ("dead is dead",
as Francis and Orleans do it): the process must stop serving and register anew.

Acquisition of one key is one short transaction that locks the lease row (``FOR UPDATE``),
then judges its owner in a *new* statement (under READ COMMITTED each statement sees
everything committed before it, so an owner that registered and acquired a moment ago is
seen live), locking the owner's registration ``FOR SHARE`` so that a renewal in flight is
waited for rather than overtaken. Only a positively expired owner is taken over: the epoch
grows by one and the takeover is logged. Concurrent acquirers queue on the row lock; the
first one wins and the others see it as the live owner. A fresh key is inserted with ``ON
CONFLICT DO NOTHING``; the loser of that race retries once and finds the winner.

Many keys at once (a cold start activates every user together, a shutdown stops them all):
:meth:`release` goes through :class:`~persistence.placement.batched_release.BatchedRelease`,
one statement for the leases given up together, and :meth:`acquire` first
offers its key to :class:`~persistence.placement.batched_acquire.BatchedAcquire`, which
settles the concurrent acquires of one instance in one statement for the common cases (a
fresh key, a released one, the caller's own) and checks the caller's liveness there too.
Every key that statement leaves unsettled (held by another instance, live or expired; a
race lost) takes the one-key transaction above, :meth:`acquire_one`, unchanged: takeovers
happen only there, with the safety argument above.

Transactions here hold row locks across round trips, so each sets ``lock_timeout`` and
``idle_in_transaction_session_timeout`` to ``hold_timeout``: a paused process cannot keep
a lease locked, and an acquirer does not wait forever behind one.

Heartbeats go through a pool of their own (one connection): a renewal must never queue
behind acquisitions for a connection, or a busy instance would expire.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from persistence.errors import MembershipLost, PersistenceError, StorageUnavailable
from persistence.placement.batched_acquire import BatchedAcquire
from persistence.placement.batched_release import BatchedRelease
from persistence.placement.model import (
    DEFAULT_TTL,
    SELF_FENCE_MARGIN,
    ClusterStatus,
    HeldElsewhere,
    InstanceStatus,
    Lease,
    Registration,
    Renewal,
)
from persistence.postgres.config import PostgresConfig, connection_error
from persistence.postgres.placement_tables import PlacementNames
from persistence.postgres.pool import ShutdownGuard, connection, make_pool
from persistence.postgres.schema import Names, migrate

_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)

_ACQUIRE_ATTEMPTS = 3
"""A fresh key's insert race, or a lock wait past ``hold_timeout``, is retried; a third
failure in a row means the key is contended beyond reason."""


def local_deadline(sent: float, ttl: float) -> float:
    """The monotonic time until which an instance whose renewal was sent at ``sent`` may
    serve: the database stamped it no earlier, and keeps it live for ``ttl`` from then."""
    return sent + ttl * (1 - SELF_FENCE_MARGIN)


class PlacementStore:
    """Membership and leases in the engine's schema (``config.schema`` / ``table_prefix``).

    ``start()`` applies the migrations (placement is migration 2) and opens two small
    pools; ``close()`` closes them. Connection failures surface as
    :class:`~persistence.errors.StorageUnavailable`, as the engine's do.
    """

    def __init__(
        self,
        config: PostgresConfig,
        *,
        application_name: str = "placement",
        hold_timeout: float = 2.0,
        pool_max_size: int = 3,
    ) -> None:
        if hold_timeout <= 0:
            raise ValueError(f"hold_timeout must be positive, got {hold_timeout}")
        self.config = config
        self.names = PlacementNames(config.schema, config.table_prefix)
        self.application_name = application_name
        self._hold_ms = f"{max(1, round(hold_timeout * 1000))}ms"
        self._pool_config = dataclasses.replace(
            config, pool_min_size=1, pool_max_size=max(1, pool_max_size)
        )
        self._pool: AsyncConnectionPool | None = None
        self._heartbeat_pool: AsyncConnectionPool | None = None
        self._guard: ShutdownGuard | None = None
        n = self.names
        self._sql_lock_lease = sql.SQL(
            "SELECT owner, epoch, acquired_at FROM {} WHERE key = %s FOR UPDATE"
        ).format(n.lease)
        self.batched = BatchedAcquire(self._connection, self._limit_locks, n)
        """The fast path of :meth:`acquire` (its ``batches`` count statements)."""
        self.batched_release = BatchedRelease(self._connection, self._limit_locks, n)
        """The fast path of :meth:`release` (its ``batches`` count statements)."""
        self._sql_judge_owner = sql.SQL(
            "SELECT address, draining, expires_at > now() FROM {} WHERE id = %s FOR SHARE"
        ).format(n.instance)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, *, migrated: bool = False) -> None:
        """Open the pools; first migrate the schema unless ``migrated`` (an engine on the
        same schema has just done it: placement's tables are among its migrations)."""
        if self._pool is not None:
            return
        cfg = self.config
        if not migrated:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    cfg.url, autocommit=True, connect_timeout=max(1, round(cfg.connect_timeout))
                )
                async with conn:
                    await migrate(conn, Names(cfg.schema, cfg.table_prefix))
            except psycopg.Error as exc:
                raise connection_error(cfg.url, "cannot prepare placement at", exc) from None
        pools = [
            make_pool(self._pool_config, self.application_name),
            make_pool(
                dataclasses.replace(self._pool_config, pool_max_size=1),
                f"{self.application_name}-heartbeat",
            ),
        ]
        try:
            await asyncio.gather(
                *(pool.open(wait=True, timeout=cfg.connect_timeout) for pool in pools)
            )
        except PoolTimeout as exc:
            for pool in pools:
                await pool.close()
            raise connection_error(cfg.url, "cannot open a connection pool to", exc) from None
        self._pool, self._heartbeat_pool = pools
        self._guard = ShutdownGuard(self.close, f"{self.application_name}-guard")

    async def close(self) -> None:
        await self.batched.wait_idle()
        await self.batched_release.wait_idle()
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.disarm()
        pools = (self._pool, self._heartbeat_pool)
        self._pool = self._heartbeat_pool = None
        for pool in pools:
            if pool is not None:
                await pool.close()

    async def __aenter__(self) -> PlacementStore:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @asynccontextmanager
    async def _connection(
        self, action: str, *, heartbeat: bool = False
    ) -> AsyncIterator[psycopg.AsyncConnection[TupleRow]]:
        pool = self._heartbeat_pool if heartbeat else self._pool
        if pool is None:
            raise StorageUnavailable(f"{action}: the placement store is not started")
        try:
            async with connection(pool, self.config.connect_timeout) as conn:
                yield conn
        except _CONNECTION_ERRORS as exc:
            raise connection_error(self.config.url, f"{action}: cannot reach", exc) from None

    async def _fetch_one(
        self,
        action: str,
        statement: sql.Composed,
        params: dict[str, object] | list[object],
        *,
        heartbeat: bool = False,
    ) -> TupleRow | None:
        """Run one statement (its own transaction) and return its first row."""
        async with self._connection(action, heartbeat=heartbeat) as conn:
            cur = await conn.execute(statement, params)
            return await cur.fetchone()

    async def _limit_locks(self, conn: psycopg.AsyncConnection[TupleRow]) -> None:
        """Bound this transaction's lock waits and its idle time holding locks."""
        await conn.execute(
            "SELECT set_config('lock_timeout', %s, true), "
            "set_config('idle_in_transaction_session_timeout', %s, true)",
            [self._hold_ms, self._hold_ms],
        )

    # -- membership --------------------------------------------------------------------------

    async def register(
        self, address: str | None, *, ttl: float = DEFAULT_TTL, instance_id: str | None = None
    ) -> Registration:
        """Register a new instance, live for ``ttl`` seconds unless renewed.

        ``address`` is where others forward requests for users it hosts (``host:port`` or a
        URL), ``None`` if it takes none. Ids are never reused: a restart registers anew.
        """
        if not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
        instance_id = instance_id or uuid.uuid4().hex
        sent = time.monotonic()
        row = await self._fetch_one(
            f"register instance {instance_id!r}",
            sql.SQL(
                "INSERT INTO {} (id, address, started_at, heartbeat_at, expires_at, "
                "ttl_seconds) VALUES (%(id)s, %(address)s, now(), now(), "
                "now() + make_interval(secs => %(ttl)s), %(ttl)s) "
                "RETURNING started_at, expires_at"
            ).format(self.names.instance),
            {"id": instance_id, "address": address, "ttl": ttl},
            heartbeat=True,
        )
        if row is None:
            raise PersistenceError(f"registering instance {instance_id!r} returned no row")
        return Registration(instance_id, address, ttl, row[0], row[1], local_deadline(sent, ttl))

    async def heartbeat(self, instance_id: str) -> Renewal:
        """Renew ``instance_id`` if it is still live by the database's clock.

        An invalid answer is final: the registration expired (or was removed) and others
        may already have taken its users over.
        """
        sent = time.monotonic()
        row = await self._fetch_one(
            f"renew instance {instance_id!r}",
            sql.SQL(
                "UPDATE {} SET heartbeat_at = now(), "
                "expires_at = now() + make_interval(secs => ttl_seconds) "
                "WHERE id = %s AND expires_at > now() RETURNING expires_at, ttl_seconds"
            ).format(self.names.instance),
            [instance_id],
            heartbeat=True,
        )
        if row is None:
            return Renewal(False, None, None)
        return Renewal(True, row[0], local_deadline(sent, float(row[1])))

    async def drain(self, instance_id: str) -> bool:
        """Mark ``instance_id`` draining: it keeps its users until it releases them, but
        acquires no new one. False if it is not registered."""
        row = await self._fetch_one(
            f"drain instance {instance_id!r}",
            sql.SQL("UPDATE {} SET draining = true WHERE id = %s RETURNING 1").format(
                self.names.instance
            ),
            [instance_id],
        )
        return row is not None

    async def deregister(self, instance_id: str) -> int:
        """Release every lease ``instance_id`` still holds and remove its registration, in
        one transaction (its fenced writes in flight commit first); the number released."""
        n = self.names
        row = await self._fetch_one(
            f"deregister instance {instance_id!r}",
            sql.SQL(
                "WITH freed AS (UPDATE {lease} SET owner = NULL WHERE owner = %(id)s "
                "RETURNING 1), gone AS (DELETE FROM {instance} WHERE id = %(id)s) "
                "SELECT count(*) FROM freed"
            ).format(lease=n.lease, instance=n.instance),
            {"id": instance_id},
        )
        return int(row[0]) if row else 0

    # -- leases ------------------------------------------------------------------------------

    async def acquire(self, key: str, instance_id: str) -> Lease | HeldElsewhere:
        """The lease of ``key`` for ``instance_id``, or the live instance that holds it.

        Acquires a free (never held, or released) lease, takes over one whose owner has
        expired, or returns the caller's own lease unchanged. Raises
        :class:`~persistence.errors.MembershipLost` if the caller itself is not
        live or drains. Concurrent calls share a statement for the common cases; the rest
        go through :meth:`acquire_one`, with the same results.
        """
        lease = await self.batched.acquire(key, instance_id)
        if lease is not None:
            return lease
        return await self.acquire_one(key, instance_id)

    async def acquire_one(self, key: str, instance_id: str) -> Lease | HeldElsewhere:
        """:meth:`acquire` for ``key`` alone, in its own transaction: the only path that
        judges another instance's liveness and takes a lease over."""
        async with self._connection(f"acquire the lease of {key!r}") as conn:
            for _ in range(_ACQUIRE_ATTEMPTS):
                try:
                    async with conn.transaction():
                        result = await self._acquire(conn, key, instance_id)
                except pg_errors.LockNotAvailable:
                    continue
                if result is not None:
                    return result
        raise PersistenceError(
            f"the lease of {key!r} stayed contended over {_ACQUIRE_ATTEMPTS} attempts"
        )

    async def _acquire(
        self, conn: psycopg.AsyncConnection[TupleRow], key: str, instance_id: str
    ) -> Lease | HeldElsewhere | None:
        """One attempt, inside a transaction; ``None``: lost a fresh key's insert race."""
        n = self.names
        await self._limit_locks(conn)
        cur = await conn.execute(
            sql.SQL("SELECT expires_at > now(), draining FROM {} WHERE id = %s").format(n.instance),
            [instance_id],
        )
        me = await cur.fetchone()
        if me is None or not me[0] or me[1]:
            reason = "not registered" if me is None else "draining" if me[0] else "expired"
            raise MembershipLost(instance_id, reason)
        cur = await conn.execute(self._sql_lock_lease, [key])
        row = await cur.fetchone()
        if row is None:
            cur = await conn.execute(
                sql.SQL(
                    "INSERT INTO {} (key, owner, epoch, acquired_at) VALUES (%s, %s, 1, now()) "
                    "ON CONFLICT (key) DO NOTHING RETURNING acquired_at"
                ).format(n.lease),
                [key, instance_id],
            )
            inserted = await cur.fetchone()
            return None if inserted is None else Lease(key, instance_id, 1, inserted[0])
        owner, epoch, acquired_at = row
        if owner == instance_id:
            return Lease(key, instance_id, int(epoch), acquired_at)
        if owner is not None:
            cur = await conn.execute(self._sql_judge_owner, [owner])
            judged = await cur.fetchone()
            if judged is not None and judged[2]:
                return HeldElsewhere(key, owner, int(epoch), judged[0], bool(judged[1]))
        cur = await conn.execute(
            sql.SQL(
                "WITH moved AS (UPDATE {lease} SET owner = %(me)s, epoch = epoch + 1, "
                "acquired_at = now(), previous_owner = owner WHERE key = %(key)s "
                "RETURNING epoch, acquired_at), "
                "logged AS (INSERT INTO {takeover} (key, epoch, from_owner, to_owner, at) "
                "SELECT %(key)s, epoch, %(from)s, %(me)s, acquired_at FROM moved "
                "WHERE %(from)s::text IS NOT NULL) "
                "SELECT epoch, acquired_at FROM moved"
            ).format(lease=n.lease, takeover=n.takeover),
            {"me": instance_id, "key": key, "from": owner},
        )
        moved = await cur.fetchone()
        if moved is None:
            raise PersistenceError(f"the locked lease of {key!r} vanished")
        return Lease(key, instance_id, int(moved[0]), moved[1], taken_over_from=owner)

    async def release(self, lease: Lease) -> bool:
        """Give ``lease`` up (passivation, handover); False if it was no longer held.

        The epoch stays: whoever acquires the key next gets the next one. Concurrent
        releases share a statement (:class:`BatchedRelease`); one whose lock wait failed
        there is released alone by :meth:`release_one`.
        """
        released = await self.batched_release.release(lease)
        if released is not None:
            return released
        return await self.release_one(lease)

    async def release_one(self, lease: Lease) -> bool:
        """:meth:`release` for ``lease`` alone, in its own statement."""
        row = await self._fetch_one(
            f"release the lease of {lease.key!r}",
            sql.SQL(
                "UPDATE {} SET owner = NULL WHERE key = %s AND owner = %s AND epoch = %s "
                "RETURNING 1"
            ).format(self.names.lease),
            [lease.key, lease.owner, lease.epoch],
        )
        return row is not None

    # -- operations --------------------------------------------------------------------------

    async def status(self) -> ClusterStatus:
        """Every registered instance with its users and takeovers, by the database's clock."""
        n = self.names
        async with self._connection("read the cluster status") as conn:
            cur = await conn.execute(
                sql.SQL(
                    "SELECT i.id, i.address, i.started_at, i.heartbeat_at, i.expires_at, "
                    "i.expires_at > now(), i.draining, "
                    "extract(epoch FROM now() - i.heartbeat_at)::float8, "
                    "(SELECT count(*) FROM {lease} l WHERE l.owner = i.id), "
                    "(SELECT count(*) FROM {takeover} t WHERE t.to_owner = i.id "
                    "AND t.at > now() - interval '1 hour') "
                    "FROM {instance} i ORDER BY i.started_at, i.id"
                ).format(lease=n.lease, takeover=n.takeover, instance=n.instance)
            )
            rows = await cur.fetchall()
            cur = await conn.execute(
                sql.SQL(
                    "SELECT now(), (SELECT count(*) FROM {} WHERE at > now() - interval '1 hour')"
                ).format(n.takeover)
            )
            totals = await cur.fetchone()
        if totals is None:
            raise PersistenceError("the cluster status query returned no row")
        instances = [
            InstanceStatus(
                instance_id=str(r[0]),
                address=r[1],
                started_at=r[2],
                heartbeat_at=r[3],
                expires_at=r[4],
                live=bool(r[5]),
                draining=bool(r[6]),
                heartbeat_age=float(r[7]),
                users=int(r[8]),
                takeovers_last_hour=int(r[9]),
            )
            for r in rows
        ]
        return ClusterStatus(totals[0], instances, int(totals[1]))

    async def prune(
        self, *, dead_for: float = 3600.0, keep_takeovers_for: float = 7 * 86400.0
    ) -> tuple[int, int]:
        """Remove registrations expired for ``dead_for`` seconds (their leases are released:
        a fence also needs the owner's row, so nothing they held becomes writable) and
        takeover records older than ``keep_takeovers_for``; the two counts."""
        n = self.names
        row = await self._fetch_one(
            "prune the cluster tables",
            sql.SQL(
                "WITH dead AS (DELETE FROM {instance} "
                "WHERE expires_at < now() - make_interval(secs => %(dead)s) RETURNING id), "
                "freed AS (UPDATE {lease} SET owner = NULL "
                "WHERE owner IN (SELECT id FROM dead) RETURNING 1), "
                "old AS (DELETE FROM {takeover} "
                "WHERE at < now() - make_interval(secs => %(keep)s) RETURNING 1) "
                "SELECT (SELECT count(*) FROM dead), (SELECT count(*) FROM old), "
                "(SELECT count(*) FROM freed)"
            ).format(instance=n.instance, lease=n.lease, takeover=n.takeover),
            {"dead": dead_for, "keep": keep_takeovers_for},
        )
        return (int(row[0]), int(row[1])) if row else (0, 0)
