"""``LocalBackend``: the :class:`~contacts_cli.backends.base.ServiceBackend` running here.

It owns an :class:`~actors.ActorSystem` on a persistence engine (PostgreSQL from
``DATABASE_URL``, else an embedded one, or an engine the caller passes in), a router actor,
and sends every command to the user's actor with ``query``. Reads of the past (history, as-of)
stream the user's journal directly (:mod:`contacts_cli.backends.past`); imports are cut into
chunks by :mod:`contacts_cli.backends.local_import`. Every failure leaves as a backend error,
translated by :mod:`contacts_cli.backends.translate`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from actors import ActorCrashed, ActorNotFound, ActorRef, ActorSystem, QueryTimeout, query
from contacts_cli.backends import local_import, past, sync_log
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
from contacts_cli.backends.runtime_figures import runtime_metrics, stats_json
from contacts_cli.backends.translate import backend_error, storage_unreachable
from contacts_cli.domain import RemoveContact, UpdateContact
from contacts_cli.service import messages
from contacts_cli.service.ids import PERSISTENCE_PREFIX, check_user_id
from contacts_cli.service.router import LiveUsers, Resolve, spawn_router
from contacts_cli.service.settings import Settings
from persistence.engine import Engine
from persistence.errors import PersistenceError

log = logging.getLogger("contacts_cli.backends.local")

_RESOLVE_ATTEMPTS = 5


class LocalBackend:
    """Drives the actor system in this process; see :meth:`open`."""

    def __init__(
        self,
        settings: Settings,
        system: ActorSystem,
        router: ActorRef,
        engine: Engine,
        *,
        owns_engine: bool,
    ) -> None:
        self.settings = settings
        self.system = system
        self.router = router
        self.engine = engine
        self._owns_engine = owns_engine
        self._refs: dict[str, ActorRef] = {}
        self._started = time.monotonic()
        self._closed = False

    # -- life cycle ----------------------------------------------------------------------

    @classmethod
    async def open(cls, settings: Settings | None = None, *,
                   engine: Engine | None = None) -> LocalBackend:
        """Start the engine (unless given), the actor system and the router.

        Without ``engine``: PostgreSQL at ``settings.database_url``, or an embedded server in
        ``settings.data_dir``; either is closed (and the embedded server stopped) by
        :meth:`close`. A given engine is used as it is and left open. A database that cannot
        be reached (or an embedded server that fails to start) raises ``Unavailable``.
        """
        settings = settings or Settings.from_env()
        owns = engine is None
        if engine is None:
            try:
                engine = await _open_engine(settings)
            except (PersistenceError, OSError) as exc:  # an embedded server's failure too
                raise backend_error(exc) from exc
        system = ActorSystem("contacts", engine=engine)
        try:
            await system.__aenter__()
            router = spawn_router(system, settings)
        except BaseException:
            if owns:
                await engine.close()
            raise
        return cls(settings, system, router, engine, owns_engine=owns)

    async def close(self) -> None:
        """Stop every actor (each finishes its current command), then flush and close."""
        if self._closed:
            return
        self._closed = True
        try:
            # Each user actor snapshots on its way out if it is far enough behind, and the
            # system waits for the snapshots in flight: the next start replays little.
            await self.system.__aexit__(None, None, None)
        finally:
            if self._owns_engine:
                await self.engine.close()

    async def __aenter__(self) -> LocalBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- talking to the actors -------------------------------------------------------------

    async def _resolve(self, user: str) -> ActorRef:
        ref = self._refs.get(user)
        if ref is None:
            ref = await self._query(self.router, Resolve(user), self.settings.query_timeout)
            self._refs[user] = ref
        return ref

    async def _ask(self, user: str, message: object, seconds: float | None = None) -> Any:
        """Send ``message`` to ``user``'s actor and return its reply (raising its failure)."""
        check_user_id(user)
        if self._closed:
            raise Unavailable("the contacts service is shutting down")
        timeout = seconds or self.settings.query_timeout
        for attempt in range(_RESOLVE_ATTEMPTS):
            if attempt:
                await asyncio.sleep(0.01 * attempt)  # let a stopping actor leave the router
            ref = await self._resolve(user)
            try:
                reply = await self._query(ref, message, timeout)
            except ActorNotFound:
                # The actor passivated (or was stopped by supervision) since we resolved it;
                # nothing was handled, so asking the router again is safe.
                if self._refs.get(user) is ref:
                    del self._refs[user]
                continue
            if isinstance(reply, messages.Failed):
                raise reply.error
            return reply
        raise Unavailable(f"the actor of user {user!r} keeps stopping; see the server log")

    async def _query(self, ref: ActorRef, message: object, seconds: float) -> Any:
        try:
            return await query(ref, message, seconds)
        except QueryTimeout as timeout:
            await self._raise_if_storage_down()
            raise backend_error(timeout) from None
        except ActorCrashed as crashed:
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
        """Raise :class:`Unavailable` unless the database answers a read within ``within`` s."""
        try:
            async with asyncio.timeout(within):
                await self.engine.highest_sequence_nr(PERSISTENCE_PREFIX + "-readiness-probe")
        except (TimeoutError, OSError, PersistenceError) as exc:
            raise storage_unreachable(exc, within) from exc

    # -- ContactsBackend -------------------------------------------------------------------

    async def create(self, user: str, data: Mapping[str, Any],
                     idempotency_key: str | None = None) -> ContactJson:
        result: ContactJson = await self._ask(user, messages.Create(dict(data), idempotency_key))
        return result

    async def get(self, user: str, contact_id: str) -> ContactJson:
        result: ContactJson = await self._ask(user, messages.Get(contact_id))
        return result

    async def list(self, user: str, *, limit: int = 50, cursor: str | None = None,
                   q: str | None = None) -> JsonObject:
        result: JsonObject = await self._ask(user, messages.ListContacts(limit, cursor, q))
        return result

    async def update(self, user: str, contact_id: str, changes: Mapping[str, Any],
                     expected_version: int | None = None) -> ContactJson:
        result: ContactJson = await self._ask(
            user, UpdateContact(contact_id, dict(changes), expected_version)
        )
        return result

    async def remove(self, user: str, contact_id: str,
                     expected_version: int | None = None) -> ContactJson:
        result: ContactJson = await self._ask(user, RemoveContact(contact_id, expected_version))
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
                user, command, self.settings.import_chunk_timeout
            )
            return outcomes

        return send

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
        live = await self._query(self.router, LiveUsers(), self.settings.query_timeout)
        return stats_json(len(users), len(live), self.runtime_metrics(),
                          time.monotonic() - self._started)

    def runtime_metrics(self) -> dict[str, float]:
        """The actor system's counters as plain numbers (for /metrics and stats)."""
        return runtime_metrics(self.system.metrics)


async def _open_engine(settings: Settings) -> Engine:
    from persistence.factory import open_engine

    return await open_engine(
        settings.database_url,
        data_dir=settings.data_dir,
        announce=lambda message: log.info("%s", message),
        schema=settings.db_schema,
    )


_conforms: type[ServiceBackend] = LocalBackend
"""Checked by mypy: LocalBackend is everything the HTTP app and the CLI call."""
