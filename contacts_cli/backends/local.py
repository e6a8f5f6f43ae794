"""``LocalBackend``: the :class:`~contacts_cli.backends.base.ServiceBackend` running here.

It owns an :class:`~actors.ActorSystem` on a persistence engine (PostgreSQL from
``DATABASE_URL``, else an embedded one, or an engine the caller passes in), a router actor,
and sends every command to the user's actor with ``query``. Reads of the past (history, as-of)
stream the user's journal directly (:mod:`contacts_cli.backends.past`); imports are cut into
chunks by :mod:`contacts_cli.backends.local_import`. Every failure leaves as a backend error,
translated by :mod:`contacts_cli.backends.translate`.

On PostgreSQL the process is an instance of the cluster (:mod:`contacts_cli.service.cluster`):
a user's actor is active here only while this instance holds the user's lease. A command for
a user active on another instance is forwarded there (:mod:`contacts_cli.backends.forwarding`),
so every answer comes from the user's one activation. When the instance's registration is
lost (a pause, the database cut off) it stops answering (503), stops its actors and joins
again as a new instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from actors import (
    ActivationElsewhere,
    ActivationLost,
    ActorCrashed,
    ActorNotFound,
    ActorRef,
    ActorSystem,
    QueryTimeout,
    query,
)
from contacts_cli.backends import local_import, past
from contacts_cli.backends.base import (
    ContactJson,
    ContactList,
    DuplicatePolicy,
    EventList,
    JsonObject,
    NumberedRow,
    Outcome,
    OutcomeList,
    RowList,
    ServiceBackend,
)
from contacts_cli.backends.errors import Unavailable
from contacts_cli.backends.forwarding import (
    NotHostedHere,
    PeerBackend,
    PeerRefused,
    Peers,
    is_forwarded,
)
from contacts_cli.backends.runtime_figures import runtime_metrics, stats_json
from contacts_cli.backends.translate import backend_error, storage_unreachable
from contacts_cli.domain import RemoveContact, UpdateContact
from contacts_cli.service import messages
from contacts_cli.service.cluster import ClusterMember, InstanceRole
from contacts_cli.service.ids import PERSISTENCE_PREFIX, check_user_id
from contacts_cli.service.router import LiveUsers, Resolve, spawn_router
from contacts_cli.service.settings import Settings
from persistence.engine import Engine
from persistence.errors import PersistenceError
from persistence.placement import ClusterPlacement

log = logging.getLogger("contacts_cli.backends.local")

_RESOLVE_ATTEMPTS = 5

FORWARD_MARGIN = 2.0
"""Seconds a forwarded call waits beyond the owner's own timeout, so the owner's 504 (not
ours) reaches the client."""

OWNER_RETRY_PAUSE = 0.25
"""Seconds between attempts to reach or replace an owner that does not answer."""

STOP_WITHIN = 10.0
"""Seconds the actors of a lost registration get to stop before they are abandoned."""

Forward = Callable[[PeerBackend], Awaitable[Any]]
"""The same call, sent to the instance that hosts the user."""


class LocalBackend:
    """Drives the actor system in this process; see :meth:`open`."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        owns_engine: bool,
        cluster: ClusterMember | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.cluster = cluster
        self.system: ActorSystem | None = None
        self.router: ActorRef | None = None
        self.peers = Peers(
            self._instance_id, fallback_token=settings.api_token,
            timeout=settings.query_timeout + FORWARD_MARGIN,
            import_timeout=settings.import_chunk_timeout + FORWARD_MARGIN,
        )
        self._owns_engine = owns_engine
        self._refs: dict[str, ActorRef] = {}
        self._started = time.monotonic()
        self._closed = False
        self._rejoining = False
        self._watcher: asyncio.Task[None] | None = None

    # -- life cycle ----------------------------------------------------------------------

    @classmethod
    async def open(cls, settings: Settings | None = None, *, engine: Engine | None = None,
                   role: InstanceRole | None = None) -> LocalBackend:
        """Start the engine (unless given), join the cluster, start the actor system and
        the router.

        Without ``engine``: PostgreSQL at ``settings.database_url``, or an embedded server in
        ``settings.data_dir``; either is closed (and the embedded server stopped) by
        :meth:`close`. A given engine is used as it is and left open. A database that cannot
        be reached (or an embedded server that fails to start) raises ``Unavailable``.

        On PostgreSQL this process registers as an instance with ``role`` (default: an
        in-process command, which takes no forwarded request; ``contacts serve`` passes
        :meth:`InstanceRole.server`).
        """
        settings = settings or Settings.from_env()
        owns = engine is None
        cluster: ClusterMember | None = None
        try:
            if engine is None:
                engine = await _open_engine(settings)
            config = getattr(engine, "config", None)
            if _is_postgres(engine) and config is not None:
                cluster = await ClusterMember.join(config, role or InstanceRole.command(settings))
        except (PersistenceError, OSError) as exc:  # an embedded server's failure too
            if owns and engine is not None:
                await engine.close()
            raise backend_error(exc) from exc
        backend = cls(settings, engine, owns_engine=owns, cluster=cluster)
        try:
            await backend._start_system()
        except BaseException:
            await backend._leave()
            raise
        if cluster is not None:
            backend._watcher = asyncio.get_running_loop().create_task(backend._rejoin_when_lost())
        return backend

    async def _start_system(self) -> None:
        placement = None
        if self.cluster is not None:
            placement = ClusterPlacement(self.cluster.store, self.cluster.membership)
        system = ActorSystem("contacts", engine=self.engine, placement=placement)
        await system.__aenter__()
        try:
            self.router = spawn_router(system, self.settings)
        except BaseException:
            await system.__aexit__(None, None, None)
            raise
        self.system = system

    async def _stop_system(self) -> None:
        system, self.system = self.system, None
        self._refs.clear()
        if system is not None:
            # Each user actor snapshots on its way out if it is far enough behind, releases
            # its lease, and the system waits for the snapshots in flight.
            await system.__aexit__(None, None, None)

    async def _rejoin_when_lost(self) -> None:
        """Whenever the registration is lost: refuse requests, stop every actor (their
        writes would be refused anyway), register anew, start afresh."""
        assert self.cluster is not None
        while True:
            reason = await self.cluster.lost()
            self._rejoining = True
            log.error("instance %s lost its registration (%s): stopping its actors and "
                      "joining again", self.cluster.instance_id, reason)
            self.peers.forget_all()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(STOP_WITHIN):
                    await self._stop_system()
            await self.cluster.rejoin()
            await self._start_system()
            self._rejoining = False
            log.warning("joined the cluster again as instance %s", self.cluster.instance_id)

    async def close(self) -> None:
        """Drain, stop every actor (each finishes its current command and releases its
        user), leave the cluster, then flush and close."""
        if self._closed:
            return
        self._closed = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        try:
            if self.cluster is not None and not self._rejoining:
                await self.cluster.drain()
            await self._stop_system()
        finally:
            await self._leave()

    async def _leave(self) -> None:
        try:
            if self.cluster is not None:
                await self.cluster.leave()
            await self.peers.close()
        finally:
            if self._owns_engine:
                await self.engine.close()

    async def __aenter__(self) -> LocalBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _instance_id(self) -> str:
        return self.cluster.instance_id if self.cluster is not None else "standalone"

    def _check_serving(self) -> None:
        if self._closed:
            raise Unavailable("the contacts service is shutting down")
        if self._rejoining or (self.cluster is not None and not self.cluster.serving()):
            raise Unavailable("this instance lost its place in the cluster (paused, or cut "
                              "off from the database) and is joining again; retry")

    # -- talking to the actors -------------------------------------------------------------

    async def _resolve(self, user: str) -> ActorRef:
        ref = self._refs.get(user)
        if ref is None:
            if self.router is None:
                raise Unavailable("the contacts service is starting or stopping")
            ref = await self._query(self.router, Resolve(user), self.settings.query_timeout)
            self._refs[user] = ref
        return ref

    async def _ask(self, user: str, message: object, seconds: float | None = None,
                   forward: Forward | None = None) -> Any:
        """Send ``message`` to ``user``'s actor and return its reply (raising its failure);
        if the actor is active on another instance, make the call there with ``forward``."""
        check_user_id(user)
        self._check_serving()
        seconds = seconds or self.settings.query_timeout
        if forward is None or is_forwarded():
            return await self._ask_here(user, message, seconds)
        if (address := self.peers.owner_of(user)) is not None:
            with contextlib.suppress(NotHostedHere, PeerRefused):
                return await self._forward(user, address, forward)
        patience = time.monotonic() + self.settings.cluster_ttl + 1.0
        while True:
            try:
                return await self._ask_here(user, message, seconds)
            except ActivationElsewhere as where:
                if where.address is not None:
                    with contextlib.suppress(NotHostedHere, PeerRefused):
                        return await self._forward(user, where.address, forward)
                if time.monotonic() >= patience:
                    raise Unavailable(
                        f"user {user!r} is active on instance {where.owner} "
                        f"({where.address or 'an in-process command'}), which does not "
                        "answer; retry shortly") from None
            await asyncio.sleep(OWNER_RETRY_PAUSE)
            self._check_serving()

    async def _forward(self, user: str, address: str, forward: Forward) -> Any:
        """Make the call on the instance at ``address``; forget it as the owner if it does
        not host the user any more or does not accept connections (the caller asks the
        database again)."""
        self.peers.learn(user, address)
        try:
            result = await forward(self.peers.peer(address))
        except (NotHostedHere, PeerRefused):
            self.peers.forget(user)
            self.peers.refused += 1
            raise
        self.peers.forwarded += 1
        return result

    async def _ask_here(self, user: str, message: object, seconds: float) -> Any:
        """The call on this instance's activation of ``user`` (activating it if need be).

        Raises ``ActivationElsewhere`` when another live instance holds the user; a request
        forwarded here answers :class:`NotHostedHere` then (no second hop)."""
        for attempt in range(_RESOLVE_ATTEMPTS):
            if attempt:
                await asyncio.sleep(0.01 * attempt)  # let a stopping actor leave the router
            ref = await self._resolve(user)
            try:
                reply = await self._query(ref, message, seconds)
            except ActorNotFound:
                # The actor passivated (or was stopped by supervision) since we resolved it;
                # nothing was handled, so asking the router again is safe.
                self._drop(user, ref)
                continue
            except ActivationElsewhere as where:
                self._drop(user, ref)
                if is_forwarded():
                    raise NotHostedHere(
                        f"user {user!r} is active on instance {where.owner}, not here; "
                        "retry") from None
                raise
            except ActivationLost:
                # Another instance took the user over (this one was paused or cut off):
                # nothing of this command was written; ask again, which finds the owner.
                self._drop(user, ref)
                self._check_serving()
                continue
            if isinstance(reply, messages.Failed):
                raise reply.error
            self.peers.forget(user)
            return reply
        raise Unavailable(f"the actor of user {user!r} keeps stopping; see the server log")

    def _drop(self, user: str, ref: ActorRef) -> None:
        if self._refs.get(user) is ref:
            del self._refs[user]

    async def _query(self, ref: ActorRef, message: object, seconds: float) -> Any:
        try:
            return await query(ref, message, seconds)
        except QueryTimeout as timeout:
            await self._raise_if_storage_down()
            raise backend_error(timeout) from None
        except ActorCrashed as crashed:
            if isinstance(crashed.error, ActivationElsewhere | ActivationLost):
                raise crashed.error from None
            raise backend_error(crashed) from crashed.error

    async def _raise_if_storage_down(self) -> None:
        """After a timeout: a database that does not answer makes it a 503, not a 504."""
        try:
            await self.ping()
        except Unavailable:
            raise
        except Exception:
            return

    async def ping(self, within: float = 3.0) -> None:
        """Raise :class:`Unavailable` unless the database answers a read within ``within`` s
        and this instance may serve."""
        self._check_serving()
        try:
            async with asyncio.timeout(within):
                await self.engine.highest_sequence_nr(PERSISTENCE_PREFIX + "-readiness-probe")
        except (TimeoutError, OSError, PersistenceError) as exc:
            raise storage_unreachable(exc, within) from exc

    # -- ContactsBackend -------------------------------------------------------------------

    async def create(self, user: str, data: Mapping[str, Any],
                     idempotency_key: str | None = None) -> ContactJson:
        result: ContactJson = await self._ask(
            user, messages.Create(dict(data), idempotency_key),
            forward=lambda peer: peer.create(user, data, idempotency_key))
        return result

    async def get(self, user: str, contact_id: str) -> ContactJson:
        result: ContactJson = await self._ask(
            user, messages.Get(contact_id), forward=lambda peer: peer.get(user, contact_id))
        return result

    async def list(self, user: str, *, limit: int = 50, cursor: str | None = None,
                   q: str | None = None) -> JsonObject:
        result: JsonObject = await self._ask(
            user, messages.ListContacts(limit, cursor, q),
            forward=lambda peer: peer.list(user, limit=limit, cursor=cursor, q=q))
        return result

    async def update(self, user: str, contact_id: str, changes: Mapping[str, Any],
                     expected_version: int | None = None) -> ContactJson:
        result: ContactJson = await self._ask(
            user, UpdateContact(contact_id, dict(changes), expected_version),
            forward=lambda peer: peer.update(user, contact_id, changes, expected_version))
        return result

    async def remove(self, user: str, contact_id: str,
                     expected_version: int | None = None) -> ContactJson:
        result: ContactJson = await self._ask(
            user, RemoveContact(contact_id, expected_version),
            forward=lambda peer: peer.remove(user, contact_id, expected_version))
        return result

    async def history(self, user: str, contact_id: str) -> EventList:
        """The contact's events, oldest first, read from the journal (also after removal)."""
        return await past.history(self.engine, user, contact_id)

    async def as_of(self, user: str, when: datetime) -> ContactList:
        """The user's contacts as they were at ``when``: the journal replayed up to it."""
        return await past.as_of(self.engine, user, when)

    async def import_rows(self, user: str, rows: AsyncIterable[JsonObject], *,
                          policy: DuplicatePolicy = "skip", chunk_size: int = 1000,
                          dry_run: bool = False, idempotency_key: str | None = None,
                          ) -> AsyncIterator[Outcome]:
        """Import ``rows`` (numbered from 1) in chunks; yield each outcome once it is durable."""
        async for outcome in self.import_numbered(
            user, local_import.numbered(rows), policy=policy, chunk_size=chunk_size,
            dry_run=dry_run, idempotency_key=idempotency_key,
        ):
            yield outcome

    async def import_numbered(
        self, user: str, rows: AsyncIterable[NumberedRow], *,
        policy: DuplicatePolicy = "skip", chunk_size: int = 1000, dry_run: bool = False,
        idempotency_key: str | None = None,
    ) -> AsyncIterator[Outcome]:
        """Like :meth:`import_rows` with the caller's row numbers (e.g. line numbers)."""
        async for outcomes in self.import_numbered_chunks(
            user, rows, policy=policy, chunk_size=chunk_size, dry_run=dry_run,
            idempotency_key=idempotency_key,
        ):
            for outcome in outcomes:
                yield outcome

    async def import_numbered_chunks(
        self, user: str, rows: AsyncIterable[NumberedRow], *,
        policy: DuplicatePolicy = "skip", chunk_size: int = 1000, dry_run: bool = False,
        idempotency_key: str | None = None, more: bool = False,
    ) -> AsyncIterator[OutcomeList]:
        """:meth:`import_numbered`, one list of outcomes per chunk once it is durable (so the
        HTTP route writes a chunk's outcome lines in one piece). ``more``: the caller sends
        more rows of the same import right after these (see ``Import``)."""
        check_user_id(user)
        options = local_import.ImportOptions(policy, dry_run, idempotency_key, more)
        async for outcomes in local_import.chunks(rows, chunk_size, options,
                                                  self._sender(user)):
            yield outcomes

    async def import_chunk(self, user: str, rows: RowList, idempotency_key: str | None, *,
                           policy: DuplicatePolicy = "skip", dry_run: bool = False,
                           more: bool = False) -> OutcomeList:
        """One chunk, rows numbered 1..n as :meth:`import_numbered` numbers them, in one
        command: what ``contacts import`` sends, without a coroutine step per row."""
        check_user_id(user)
        options = local_import.ImportOptions(policy, dry_run, idempotency_key, more)
        return await local_import.one_chunk(rows, options, self._sender(user))

    def _sender(self, user: str) -> local_import.Send:
        async def send(command: messages.Import) -> OutcomeList:
            outcomes: OutcomeList = await self._ask(
                user, command, self.settings.import_chunk_timeout,
                forward=lambda peer: peer.import_command(user, command))
            return outcomes

        return send

    async def user_count(self, user: str) -> int:
        count: int = await self._ask(user, messages.Count())
        return count

    async def stats(self) -> JsonObject:
        """Journal and runtime figures for ``contacts stats``."""
        try:
            ids = await self.engine.persistence_ids()
        except (PersistenceError, OSError) as exc:
            raise backend_error(exc) from exc
        users = [pid for pid in ids if pid.startswith(PERSISTENCE_PREFIX)]
        self._check_serving()
        assert self.router is not None
        live = await self._query(self.router, LiveUsers(), self.settings.query_timeout)
        figures = stats_json(len(users), len(live), self.runtime_metrics(),
                             time.monotonic() - self._started)
        figures["cluster"] = await self.cluster_figures()
        return figures

    async def cluster_figures(self) -> JsonObject | None:
        """This instance's view of the cluster (None without one, or if the database does
        not answer): see :meth:`ClusterMember.figures`, plus the calls forwarded from here."""
        if self.cluster is None:
            return None
        try:
            figures = await self.cluster.figures()
        except (PersistenceError, OSError) as exc:
            log.warning("cannot read the cluster's status: %s", exc)
            return None
        return {**figures, "forwarded": self.peers.forwarded,
                "forwards_refused": self.peers.refused}

    def runtime_metrics(self) -> dict[str, float]:
        """The actor system's counters as plain numbers (for /metrics and stats)."""
        return runtime_metrics(self.system.metrics) if self.system is not None else {}


async def _open_engine(settings: Settings) -> Engine:
    from persistence.factory import open_engine

    return await open_engine(
        settings.database_url,
        data_dir=settings.data_dir,
        announce=lambda message: log.info(
            "%s (set DATABASE_URL to use another server, CONTACTS_DATA_DIR to move it)", message
        ),
        schema=settings.db_schema,
    )


def _is_postgres(engine: Engine) -> bool:
    """Whether ``engine`` is shared with other processes (PostgreSQL), so placement applies."""
    from persistence.postgres import PostgresEngine

    return isinstance(engine, PostgresEngine)


_conforms: type[ServiceBackend] = LocalBackend
"""Checked by mypy: LocalBackend is everything the HTTP app and the CLI call."""
