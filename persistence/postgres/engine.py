"""The PostgreSQL engine: the engine contract on psycopg 3 with an async connection pool.

:class:`PostgresEngine` composes one part per concern, each on the engine's pooled
:class:`~persistence.postgres.pool.Connections`:

* appends: the group-commit writer, :mod:`persistence.postgres.writer` (the journal write
  path starts there);
* replay, by-tag reads, highest, deletes, ids: :mod:`persistence.postgres.journal`;
* snapshots: :mod:`persistence.postgres.snapshots`;
* the start of recoveries (highest, snapshot, first page; concurrent callers share one
  query): :mod:`persistence.postgres.recovery_reads`;
* durable state: :mod:`persistence.postgres.durable_state`;
* tables and migrations: :mod:`persistence.postgres.schema`.

Every call other than append takes a pooled connection for one statement or one short
transaction. Connection failures surface as :class:`~persistence.errors.StorageUnavailable`
naming host, port and database.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import PoolTimeout

from persistence.embedded import EmbeddedPostgres
from persistence.engine import (
    MAX_SEQUENCE_NR,
    DurableState,
    Engine,
    Json,
    NewEvent,
    RecoveryStart,
    Snapshot,
    StoredEvent,
    check_append,
    check_fence_key,
    encode_payloads,
)
from persistence.errors import InvalidArgument, StorageUnavailable
from persistence.leases import Lease
from persistence.postgres.config import PostgresConfig, connection_error
from persistence.postgres.durable_state import StateQueries
from persistence.postgres.journal import JournalQueries
from persistence.postgres.ordering import MAX_EVENTS_PER_TRANSACTION
from persistence.postgres.pool import CONNECTION_ERRORS, Connections, ShutdownGuard, make_pool
from persistence.postgres.recovery_reads import RecoveryReads
from persistence.postgres.schema import Names, migrate
from persistence.postgres.snapshots import SnapshotQueries
from persistence.postgres.writer import GroupCommitWriter


class PostgresEngine(Engine):
    """Journal, snapshots and durable state in one PostgreSQL schema.

    ``PostgresEngine(url)`` or ``PostgresEngine(config=PostgresConfig(url, schema=...))``;
    keyword arguments other than ``config`` are passed to :class:`PostgresConfig`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        config: PostgresConfig | None = None,
        writer_id: str | None = None,
        **settings: Any,
    ) -> None:
        if config is None:
            if url is None:
                raise InvalidArgument("PostgresEngine needs a url or a config")
            config = PostgresConfig(url, **settings)
        elif url is not None or settings:
            raise InvalidArgument("pass either a config or a url with settings, not both")
        self.config = config
        self.writer_id = writer_id or uuid.uuid4().hex
        self.names = Names(config.schema, config.table_prefix)
        self._target = config.target
        self._connections = Connections(config)
        self._writer: GroupCommitWriter | None = None
        self._journal = JournalQueries(self._connections, self.names, config.replay_page_size)
        self._snapshots = SnapshotQueries(self._connections, self.names)
        self._recovery_reads = self._new_recovery_reads()
        self._states = StateQueries(self._connections, self.names)
        self.embedded: EmbeddedPostgres | None = None
        """The embedded server this engine runs on, if :func:`~persistence.open_engine` started
        one; released when the engine closes."""
        self._guard: ShutdownGuard | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def target(self) -> str:
        """``host:port/database`` of the server this engine talks to."""
        return self._target

    @property
    def application_name(self) -> str:
        """The ``application_name`` of this engine's connections (see ``pg_stat_activity``)."""
        return f"persistence-{self.writer_id[:12]}"

    async def start(self) -> None:
        if self._connections.pool is not None:
            return
        cfg = self.config
        try:
            # One direct connection first: it gives the real reason (refused, bad password,
            # missing database) where a pool would only time out.
            conn = await psycopg.AsyncConnection.connect(
                cfg.url, autocommit=True, connect_timeout=max(1, round(cfg.connect_timeout))
            )
        except psycopg.Error as exc:
            raise connection_error(cfg.url, "cannot connect to", exc) from None
        try:
            async with conn:
                await migrate(conn, self.names)
        except CONNECTION_ERRORS as exc:
            raise connection_error(cfg.url, "lost connection to", exc) from None
        pool = make_pool(cfg, self.application_name)
        try:
            await pool.open(wait=True, timeout=cfg.connect_timeout)
        except PoolTimeout as exc:
            await pool.close()
            raise connection_error(cfg.url, "cannot open a connection pool to", exc) from None
        self._connections.pool = pool
        self._writer = GroupCommitWriter(
            pool,
            self.names,
            self.writer_id,
            self._target,
            max_batch_events=cfg.max_batch_events,
            max_in_flight=cfg.max_batches_in_flight,
            connect_timeout=cfg.connect_timeout,
        )
        self._recovery_reads = self._new_recovery_reads()
        self._guard = ShutdownGuard(self.close, f"{self.application_name}-guard")

    async def close(self) -> None:
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.disarm()
        writer, pool = self._writer, self._connections.pool
        self._writer = None
        if writer is not None:
            await writer.close()
        await self._recovery_reads.close()
        self._connections.pool = None
        if pool is not None:
            await pool.close()
        embedded, self.embedded = self.embedded, None
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)

    @property
    def writer(self) -> GroupCommitWriter:
        """The group-commit writer (for statistics); fails if the engine is not started."""
        if self._writer is None:
            raise StorageUnavailable(f"the engine for {self._target} is not started")
        return self._writer

    async def drop_schema(self) -> None:
        """Drop this engine's whole schema (tests and tools only), then close the engine."""
        async with self._connections("drop schema") as conn:
            await conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(self.names.schema)
                )
            )
        await self.close()

    # -- journal -----------------------------------------------------------------------------

    async def append(
        self,
        persistence_id: str,
        events: Sequence[NewEvent],
        expected_sequence_nr: int,
        *,
        fence: Lease | None = None,
    ) -> list[StoredEvent]:
        """Check and encode once, then queue for the group-commit writer: the journal write
        path, described in :mod:`persistence.postgres.writer`."""
        if not events:
            return []
        check_append(persistence_id, events, expected_sequence_nr)
        check_fence_key(persistence_id, fence)
        if len(events) > MAX_EVENTS_PER_TRANSACTION:
            raise InvalidArgument(
                f"an append to {persistence_id!r} holds {len(events)} events; PostgreSQL "
                f"takes at most {MAX_EVENTS_PER_TRANSACTION} in one append"
            )
        payloads = encode_payloads(persistence_id, events)
        return await self.writer.submit(
            persistence_id, events, payloads, expected_sequence_nr, fence
        )

    def replay(
        self,
        persistence_id: str,
        from_sequence_nr: int = 1,
        to_sequence_nr: int = MAX_SEQUENCE_NR,
        max_count: int | None = None,
    ) -> AsyncIterator[StoredEvent]:
        return self._journal.replay(persistence_id, from_sequence_nr, to_sequence_nr, max_count)

    async def highest_sequence_nr(self, persistence_id: str) -> int:
        return await self._journal.highest_sequence_nr(persistence_id)

    async def delete_events_to(
        self, persistence_id: str, to_sequence_nr: int, *, fence: Lease | None = None
    ) -> None:
        check_fence_key(persistence_id, fence)
        await self._journal.delete_events_to(persistence_id, to_sequence_nr, fence)

    def events_by_tag(
        self, tag: str, after_ordering: int = 0, max_count: int | None = None
    ) -> AsyncIterator[StoredEvent]:
        return self._journal.events_by_tag(tag, after_ordering, max_count)

    async def persistence_ids(self) -> list[str]:
        return await self._journal.persistence_ids()

    # -- snapshots ---------------------------------------------------------------------------

    async def save_snapshot(
        self, persistence_id: str, sequence_nr: int, payload: Json, blob: bytes | None = None
    ) -> None:
        await self._snapshots.save(persistence_id, sequence_nr, payload, blob)

    async def load_snapshot(
        self, persistence_id: str, max_sequence_nr: int = MAX_SEQUENCE_NR
    ) -> Snapshot | None:
        return await self._snapshots.load(persistence_id, max_sequence_nr)

    async def delete_snapshots(
        self, persistence_id: str, min_sequence_nr: int = 0, max_sequence_nr: int = MAX_SEQUENCE_NR
    ) -> None:
        await self._snapshots.delete(persistence_id, min_sequence_nr, max_sequence_nr)

    # -- recovery ----------------------------------------------------------------------------

    async def recovery_start(self, persistence_id: str, max_count: int) -> RecoveryStart:
        """Read in the next shared batch of :mod:`persistence.postgres.recovery_reads`."""
        return await self._recovery_reads.read(persistence_id, max_count)

    def _new_recovery_reads(self) -> RecoveryReads:
        """Shared recovery reads; a large snapshot is loaded alone, and should it be gone by
        then its caller starts again the one-by-one way (the contract's default)."""
        return RecoveryReads(
            self._connections,
            self.names,
            self._target,
            self.load_snapshot,
            functools.partial(Engine.recovery_start, self),
        )

    @property
    def recovery_reads(self) -> RecoveryReads:
        """The batches of recovery reads (for statistics)."""
        return self._recovery_reads

    # -- durable state -----------------------------------------------------------------------

    async def get_state(self, key: str) -> DurableState | None:
        return await self._states.get(key)

    async def upsert_state(
        self, key: str, value: Json, expected_revision: int, ttl: float | None = None
    ) -> DurableState:
        return await self._states.upsert(key, value, expected_revision, ttl)

    async def delete_state(self, key: str, expected_revision: int | None = None) -> bool:
        return await self._states.delete(key, expected_revision)

    async def purge_expired_state(self) -> int:
        """Mark expired values deleted and drop their payload; revisions stay, so never reused."""
        return await self._states.purge_expired()
