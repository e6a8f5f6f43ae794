"""``LocalBackend``: the :class:`~contacts_cli.backends.base.ContactsBackend` running here.

It owns an :class:`~actors.ActorSystem` on a persistence engine (PostgreSQL from
``DATABASE_URL``, else an embedded one, or an engine the caller passes in), a router actor,
and sends every command to the user's actor with ``query``. Reads of the past (history, as-of)
stream the user's journal directly, so a long replay never blocks that user's mailbox.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from actors import ActorCrashed, ActorNotFound, ActorRef, ActorSystem, QueryTimeout, query
from contacts_cli.backends.base import (
    BackendError,
    ContactJson,
    DuplicatePolicy,
    Invalid,
    NotFound,
    TimedOut,
    Unavailable,
)
from contacts_cli.domain import (
    ContactNotFound,
    ContactsState,
    ImportRow,
    RemoveContact,
    UpdateContact,
    contact_history,
    contact_to_dict,
    evolve,
)
from contacts_cli.domain.decide import DUPLICATE_POLICIES
from contacts_cli.domain.model import format_timestamp, require_aware
from contacts_cli.service.router import LiveUsers, Resolve, spawn_router
from contacts_cli.service.settings import Settings
from contacts_cli.service.user_actor import (
    PERSISTENCE_PREFIX,
    Count,
    Create,
    Failed,
    Get,
    Import,
    ListContacts,
    SnapshotIfBehind,
    check_user_id,
    decode_journaled,
    drain_snapshots,
    persistence_id,
)
from persistence.engine import Engine
from persistence.errors import PersistenceError, StorageUnavailable

log = logging.getLogger("contacts_cli.backends.local")

_RESOLVE_ATTEMPTS = 5
class RowError:
    """An import row that could not even be read (malformed line); reported as rejected."""

    __slots__ = ("errors", "number")

    def __init__(self, number: int, errors: list[tuple[str, str]]) -> None:
        self.number = number
        self.errors = errors


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
        :meth:`close`. A given engine is used as it is and left open.
        """
        settings = settings or Settings.from_env()
        owns = engine is None
        if engine is None:
            engine = await _open_engine(settings)
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
            await self._snapshot_behind_users()
            await self.system.__aexit__(None, None, None)
            await drain_snapshots()
        finally:
            if self._owns_engine:
                await self.engine.close()

    async def _snapshot_behind_users(self) -> None:
        """Ask each user actor this backend talked to for a last snapshot if it is far enough
        behind (see ``UserActor``), so the next start after a big import replays nothing.
        Best effort: a snapshot is an optimisation, the journal has everything."""
        for user, ref in list(self._refs.items()):
            try:
                await query(ref, SnapshotIfBehind(), self.settings.query_timeout)
            except Exception as exc:  # an actor that stopped or cannot answer: nothing to do
                log.debug("no closing snapshot for %r: %r", user, exc)

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
            if isinstance(reply, Failed):
                raise reply.error
            return reply
        raise Unavailable(f"the actor of user {user!r} keeps stopping; see the server log")

    async def _query(self, ref: ActorRef, message: object, seconds: float) -> Any:
        try:
            return await query(ref, message, seconds)
        except QueryTimeout:
            await self._raise_if_storage_down()
            raise TimedOut(f"no answer within {seconds:g} s") from None
        except ActorCrashed as crashed:
            raise _crash_error(crashed.error) from crashed.error

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
        except TimeoutError:
            raise Unavailable(f"the database did not answer within {within:g} s") from None
        except StorageUnavailable as exc:
            raise Unavailable(str(exc)) from exc
        except (OSError, PersistenceError) as exc:
            raise Unavailable(f"the database cannot be reached: {exc}") from exc

    # -- ContactsBackend -------------------------------------------------------------------

    async def create(self, user: str, data: Mapping[str, Any],
                     idempotency_key: str | None = None) -> ContactJson:
        result: ContactJson = await self._ask(user, Create(dict(data), idempotency_key))
        return result

    async def get(self, user: str, contact_id: str) -> ContactJson:
        result: ContactJson = await self._ask(user, Get(contact_id))
        return result

    async def list(self, user: str, *, limit: int = 50, cursor: str | None = None,
                   q: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self._ask(user, ListContacts(limit, cursor, q))
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

    async def history(self, user: str, contact_id: str) -> list[dict[str, Any]]:
        """The contact's events, oldest first, read from the journal (also after removal)."""
        pid = persistence_id(user)
        stored = []
        async for event in self._journal(pid):
            if isinstance(event.payload, dict) and event.payload.get("id") == contact_id:
                item = decode_journaled(event.type, event.version, event.payload)
                stored.append((item.event.at, item.event, event))
        try:
            entries = contact_history(contact_id, [(at, ev) for at, ev, _ in stored])
        except ContactNotFound:
            raise NotFound(f"contact {contact_id!r} not found") from None
        return [
            {
                "sequence_nr": raw.sequence_nr,
                "type": entry.type,
                "timestamp": format_timestamp(entry.at),
                "recorded_at": format_timestamp(raw.timestamp),
                "version": entry.version,
                "changes": entry.changes,
            }
            for entry, (_, _, raw) in zip(entries, stored, strict=True)
        ]

    async def as_of(self, user: str, when: datetime) -> list[ContactJson]:
        """The user's contacts as they were at ``when``: the journal replayed up to it."""
        try:
            require_aware(when)
        except ValueError:
            raise Invalid([("as_of", "must carry a time zone offset")]) from None
        state = ContactsState()
        async for event in self._journal(persistence_id(user)):
            item = decode_journaled(event.type, event.version, event.payload)
            if item.event.at <= when:
                evolve(state, item.event)
        contacts = (state.get(contact_id) for _, contact_id in state.ordered_keys())
        return [contact_to_dict(contact) for contact in contacts if contact is not None]

    async def _journal(self, pid: str) -> AsyncIterator[Any]:
        try:
            async for event in self.engine.replay(pid):
                yield event
        except StorageUnavailable as exc:
            raise Unavailable(str(exc)) from exc

    async def import_rows(self, user: str, rows: AsyncIterable[dict[str, Any]], *,
                          policy: DuplicatePolicy = "skip", chunk_size: int = 1000,
                          dry_run: bool = False, idempotency_key: str | None = None,
                          ) -> AsyncIterator[dict[str, Any]]:
        """Import ``rows`` (numbered from 1) in chunks; yield each outcome once it is durable."""

        async def numbered() -> AsyncIterator[tuple[int, dict[str, Any] | RowError]]:
            number = 0
            async for row in rows:
                number += 1
                yield number, row

        async for outcome in self.import_numbered(
            user, numbered(), policy=policy, chunk_size=chunk_size, dry_run=dry_run,
            idempotency_key=idempotency_key,
        ):
            yield outcome

    async def import_numbered(
        self,
        user: str,
        rows: AsyncIterable[tuple[int, Any]],
        *,
        policy: DuplicatePolicy = "skip",
        chunk_size: int = 1000,
        dry_run: bool = False,
        idempotency_key: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Like :meth:`import_rows` with the caller's row numbers (e.g. line numbers).

        A row that is a :class:`RowError` (or not an object) is reported as rejected without
        reaching the actor. Each chunk is one command and one ``persist_all``; with
        ``idempotency_key`` each row is journaled under ``<key>#<row>``, so re-sending the
        same rows with the same key creates nothing twice, even after a crash.
        """
        async for outcomes in self.import_numbered_chunks(
            user, rows, policy=policy, chunk_size=chunk_size, dry_run=dry_run,
            idempotency_key=idempotency_key,
        ):
            for outcome in outcomes:
                yield outcome

    async def import_numbered_chunks(
        self,
        user: str,
        rows: AsyncIterable[tuple[int, Any]],
        *,
        policy: DuplicatePolicy = "skip",
        chunk_size: int = 1000,
        dry_run: bool = False,
        idempotency_key: str | None = None,
        more: bool = False,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """:meth:`import_numbered`, one list of outcomes per chunk once it is durable (so the
        HTTP route writes a chunk's outcome lines in one piece). ``more``: the caller sends
        more rows of the same import right after these (see ``Import``)."""
        check_user_id(user)
        if policy not in DUPLICATE_POLICIES:
            raise Invalid([("policy", f"must be one of {', '.join(DUPLICATE_POLICIES)}")])
        if chunk_size < 1:
            raise Invalid([("chunk_size", "must be at least 1")])
        chunk: list[ImportRow] = []
        early: list[dict[str, Any]] = []
        async for number, row in rows:
            if isinstance(row, RowError):
                early.append(_rejected(number, row.errors))
            elif not isinstance(row, Mapping):
                early.append(_rejected(number, [("row", "must be an object of contact fields")]))
            else:
                chunk.append(ImportRow(number, row))
            if len(chunk) >= chunk_size:
                yield await self._import_chunk(user, chunk, early, policy, dry_run,
                                               idempotency_key, more)
                chunk, early = [], []
        if chunk or early:
            yield await self._import_chunk(user, chunk, early, policy, dry_run, idempotency_key,
                                           more)

    async def import_chunk(self, user: str, rows: list[dict[str, Any]],
                           idempotency_key: str | None, *, policy: DuplicatePolicy = "skip",
                           dry_run: bool = False, more: bool = False) -> list[dict[str, Any]]:
        """One chunk, rows numbered 1..n as :meth:`import_numbered` numbers them, in one
        command: what ``contacts import`` sends, without a coroutine step per row. ``more``:
        the next chunk of the same import follows at once (see ``Import``)."""
        check_user_id(user)
        if policy not in DUPLICATE_POLICIES:
            raise Invalid([("policy", f"must be one of {', '.join(DUPLICATE_POLICIES)}")])
        chunk: list[ImportRow] = []
        early: list[dict[str, Any]] = []
        for number, row in enumerate(rows, 1):
            if isinstance(row, RowError):
                early.append(_rejected(number, row.errors))
            elif not isinstance(row, Mapping):
                early.append(_rejected(number, [("row", "must be an object of contact fields")]))
            else:
                chunk.append(ImportRow(number, row))
        return await self._import_chunk(user, chunk, early, policy, dry_run, idempotency_key,
                                        more)

    async def _import_chunk(
        self, user: str, chunk: list[ImportRow], early: list[dict[str, Any]],
        policy: DuplicatePolicy, dry_run: bool, key: str | None, more: bool = False,
    ) -> list[dict[str, Any]]:
        outcomes: list[dict[str, Any]] = list(early)
        if chunk:
            outcomes += await self._ask(
                user, Import(chunk, policy, dry_run, key, more),
                self.settings.import_chunk_timeout,
            )
        outcomes.sort(key=lambda o: int(o["row"]))
        return outcomes

    async def user_count(self, user: str) -> int:
        count: int = await self._ask(user, Count())
        return count

    async def stats(self) -> dict[str, Any]:
        """Journal and runtime figures for ``contacts stats``."""
        try:
            ids = await self.engine.persistence_ids()
        except StorageUnavailable as exc:
            raise Unavailable(str(exc)) from exc
        users = [pid[len(PERSISTENCE_PREFIX):] for pid in ids if pid.startswith(PERSISTENCE_PREFIX)]
        live = await self._query(self.router, LiveUsers(), self.settings.query_timeout)
        metrics = self.runtime_metrics()
        return {
            "users": len(users),
            "live_users": len(live),
            "live_actors": metrics.get("live_actors", 0),
            "messages_handled": metrics.get("messages_handled", 0),
            "events_persisted": metrics.get("persists", 0),
            "journal_writes": metrics.get("persist_seconds_count", 0),
            "persist_seconds_total": metrics.get("persist_seconds_sum", 0.0),
            "persist_ms_p50": _ms(metrics.get("persist_seconds_p50")),
            "persist_ms_p99": _ms(metrics.get("persist_seconds_p99")),
            "recoveries": metrics.get("replays", 0),
            "recovery_seconds_total": metrics.get("replay_seconds_sum", 0.0),
            "events_replayed": metrics.get("events_replayed", 0),
            "uptime_seconds": round(time.monotonic() - self._started, 3),
        }

    def runtime_metrics(self) -> dict[str, float]:
        """The actor system's counters as plain numbers (for /metrics and stats)."""
        m = self.system.metrics
        out: dict[str, float] = {}
        for name in ("live_actors", "messages_handled", "dead_letters", "faults",
                     "passivations", "persists", "replays", "events_replayed"):
            value = getattr(m, name, None)
            if isinstance(value, int | float):
                out[name] = value
        for name in ("persist_seconds", "replay_seconds"):
            timings = getattr(m, name, None)
            if timings is None:
                continue
            out[name + "_count"] = float(getattr(timings, "count", 0))
            out[name + "_sum"] = float(getattr(timings, "total", 0.0))
            for quantile in ("p50", "p99"):
                value = getattr(timings, quantile, None)
                if isinstance(value, int | float):
                    out[f"{name}_{quantile}"] = float(value)
        return out


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _rejected(number: int, errors: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "row": number,
        "outcome": "rejected",
        "id": None,
        "errors": [{"field": f, "message": m} for f, m in errors],
    }


def _crash_error(error: BaseException) -> BackendError:
    """The backend error for a command that crashed its actor (it was then reset)."""
    if isinstance(error, BackendError):
        return error
    if isinstance(error, StorageUnavailable | OSError):
        return Unavailable(f"the database cannot be reached: {error}")
    return BackendError(f"internal error: {type(error).__name__}: {error}")


async def _open_engine(settings: Settings) -> Engine:
    from persistence.factory import open_engine

    return await open_engine(
        settings.database_url,
        data_dir=settings.data_dir,
        announce=lambda message: log.info("%s", message),
        schema=settings.db_schema,
    )

