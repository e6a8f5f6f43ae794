"""``LocalBackend``: the :class:`~contacts_cli.backends.base.ServiceBackend` running here.

It owns an :class:`~actors.ActorSystem` on a persistence engine (PostgreSQL from
``DATABASE_URL``, else an embedded one, or an engine the caller passes in), a router actor,
and sends every command to the user's actor with ``query``. Reads of the past (history, as-of)
stream the user's journal directly (:mod:`contacts_cli.backends.past`); imports are cut into
chunks by :mod:`contacts_cli.backends.local_import`. Accounts (:mod:`contacts_cli.accounts`)
have a durable-state actor each, found through a second router. Every failure leaves as a
backend error, translated by :mod:`contacts_cli.backends.translate`.

On PostgreSQL the process is an instance of the cluster (:mod:`contacts_cli.service.cluster`):
a user's actor is active here only while this instance holds the user's lease, and a command
for a user active on another instance is made there instead; which of the two happens is
:mod:`contacts_cli.backends.activations`' job, so every answer comes from the user's one
activation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from actors import ActorSystem
from contacts_cli.accounts.hashing import PasswordHashing
from contacts_cli.accounts.service import Accounts
from contacts_cli.backends import local_import, past, sync_log
from contacts_cli.backends.activations import Activations, Forward
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
from contacts_cli.backends.forwarding import NotHostedHere, PeerBackend, PeerRefused, Relayed
from contacts_cli.backends.runtime_figures import runtime_metrics, stats_json
from contacts_cli.backends.translate import backend_error, storage_unreachable
from contacts_cli.domain import RemoveContact, UpdateContact
from contacts_cli.service import messages
from contacts_cli.service.cluster import ClusterMember, InstanceRole
from contacts_cli.service.ids import PERSISTENCE_PREFIX, check_user_id
from contacts_cli.service.settings import Settings
from persistence.engine import Engine
from persistence.errors import PersistenceError

log = logging.getLogger("contacts_cli.backends.local")


class LocalBackend:
    """Drives the actor system in this process; see :meth:`open`."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        owns_engine: bool,
        cluster: ClusterMember | None = None,
        hashing: PasswordHashing | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.cluster = cluster
        self.activations = Activations(settings, engine, cluster, self._raise_if_storage_down)
        self.accounts = Accounts(self.activations.ask_account, hashing,
                                 cache_seconds=settings.auth_cache_seconds)
        self._owns_engine = owns_engine
        self._started = time.monotonic()

    # -- life cycle ----------------------------------------------------------------------

    @classmethod
    async def open(cls, settings: Settings | None = None, *, engine: Engine | None = None,
                   role: InstanceRole | None = None,
                   hashing: PasswordHashing | None = None) -> LocalBackend:
        """Start the engine (unless given), join the cluster, start the actor system and
        the routers (of the users' actors and of the accounts' actors; ``hashing``: the
        accounts' argon2 parameters).

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
                cluster = await ClusterMember.join(  # the started engine migrated the schema
                    config, role or InstanceRole.command(settings), migrated=True)
        except (PersistenceError, OSError) as exc:  # an embedded server's failure too
            if owns and engine is not None:
                await engine.close()
            raise backend_error(exc) from exc
        backend = cls(settings, engine, owns_engine=owns, cluster=cluster, hashing=hashing)
        try:
            await backend.activations.start()
        except BaseException:
            await backend._release()
            raise
        return backend

    async def close(self) -> None:
        """Drain, stop every actor (each finishes its current command and releases its
        user), leave the cluster, then flush and close."""
        try:
            await self.activations.close()
        finally:
            self.accounts.close()
            await self._release()

    async def _release(self) -> None:
        try:
            await self.activations.leave()
        finally:
            if self._owns_engine:
                self._owns_engine = False
                await self.engine.close()

    async def __aenter__(self) -> LocalBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def system(self) -> ActorSystem:
        """The actor system running now (a new one after the instance joined again)."""
        if self.activations.system is None:
            raise Unavailable("the contacts service is starting or stopping")
        return self.activations.system

    # -- talking to the actors -------------------------------------------------------------

    async def _ask(self, user: str, message: object, seconds: float | None = None,
                   forward: Forward | None = None) -> Any:
        """Send ``message`` to ``user``'s actor and return its reply (raising its failure);
        if the actor is active on another instance, make the call there with ``forward``."""
        check_user_id(user)
        return await self.activations.ask(user, message, seconds or self.settings.query_timeout,
                                          forward)

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
        self.activations.check_serving()
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

    def as_of_pages(self, user: str, when: datetime) -> AsyncIterator[ContactList]:
        """:meth:`as_of` a page at a time (what ``GET ...?as_of=`` streams)."""
        return past.as_of_pages(self.engine, user, when)

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

    # -- accounts (contacts_cli.accounts) ------------------------------------------------

    async def add_account(self, name: str, password: str) -> JsonObject:
        return await self.accounts.add(name, password)

    async def set_password(self, name: str, password: str) -> JsonObject:
        return await self.accounts.set_password(name, password)

    async def remove_account(self, name: str) -> JsonObject:
        return await self.accounts.remove(name)

    async def verify_password(self, name: str, password: str) -> bool:
        return await self.accounts.verify(name, password)
    async def cards(self, user: str, ids: tuple[str, ...] | None = None
                    ) -> messages.CardsReply:
        """The live contacts with ``ids`` (all for ``None``) and the user's sequence number."""
        reply: messages.CardsReply = await self._ask(user, messages.Cards(ids))
        return reply

    async def put_card(self, user: str, put: messages.PutCard) -> messages.PutCardReply:
        """Create or replace the contact an address-book client PUT, in one command."""
        reply: messages.PutCardReply = await self._ask(user, put)
        return reply

    async def changes_since(self, user: str, after: int | None,
                            limit: int | None = None) -> sync_log.Changes:
        """The contacts changed after sequence number ``after``, read from the journal."""
        check_user_id(user)

        async def ask(ids: tuple[str, ...] | None) -> messages.CardsReply:
            return await self.cards(user, ids)

        return await sync_log.changes_since(self.engine, user, after, limit, ask)

    async def host_of(self, user: str) -> str | None:
        """Where ``user``'s address book is served: ``None`` for here (the user is activated
        here if no live instance hosts it), else the address of the instance that does.

        A request that was itself forwarded here is always served here (or refused with
        :class:`~contacts_cli.backends.forwarding.NotHostedHere`): one hop at most. Outside a
        cluster every user is served here, and no actor is asked."""
        if self.activations.cluster is None:
            check_user_id(user)
            return None

        async def elsewhere(peer: PeerBackend) -> str:
            return peer.address

        where = await self._ask(user, messages.Count(), forward=elsewhere)
        return where if isinstance(where, str) else None

    async def relay(self, user: str, address: str, method: str, target: str,
                    headers: Mapping[str, str], body: bytes) -> Relayed:
        """Send a whole HTTP request for ``user`` to the instance at ``address`` (see
        :meth:`host_of`); that instance is forgotten as the user's owner if it no longer
        hosts the user or accepts no connection, so the next request asks the database."""
        peers = self.activations.peers
        try:
            relayed = await peers.peer(address).relay(method, target, headers, body)
        except (NotHostedHere, PeerRefused):
            peers.forget(user)
            peers.refused += 1
            raise
        peers.forwarded += 1
        return relayed

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
        live = await self.activations.live_users()
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
        peers = self.activations.peers
        return {**figures, "forwarded": peers.forwarded, "forwards_refused": peers.refused}

    def runtime_metrics(self) -> dict[str, float]:
        """The actor system's counters as plain numbers (for /metrics and stats)."""
        system = self.activations.system
        return runtime_metrics(system.metrics) if system is not None else {}


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
