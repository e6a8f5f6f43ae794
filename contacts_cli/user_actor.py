"""One persistent actor per user: it owns that user's contacts and journals every change.

The actor is a thin shell around the pure domain: ``decide`` turns a command into events, the
actor persists them (one ``persist_all`` per command or import chunk) and only then folds them
with ``evolve`` and replies. Ids and timestamps are made once, in the command handler, and stored
in the events, so a replay reproduces the state exactly.

Idempotency keys travel in the journal with the events they produced, so a retried request is
recognised after a crash and restart as well as before.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from actors import PersistentActor, PersistentContext
from actors.upcasting import EncodedEvent, EventCodec
from contacts_cli.backend import BackendError, Conflict, ContactJson, Invalid, NotFound
from contacts_cli.domain import (
    ContactCreated,
    ContactNotFound,
    ContactsState,
    CreateContact,
    DomainError,
    Event,
    ImportContacts,
    ImportRow,
    RemoveContact,
    RowOutcome,
    UpdateContact,
    ValidationError,
    VersionConflict,
    contact_to_dict,
    decide,
    event_from_payload,
    event_to_payload,
    evolve,
    get_contact,
    list_contacts,
    plan_import,
    search_contacts,
    state_from_snapshot,
    state_to_snapshot,
)
from contacts_cli.domain.decide import DuplicatePolicy
from contacts_cli.domain.events import EVENT_VERSIONS
from persistence.engine import Json
from persistence.errors import JournalIntegrityError

PERSISTENCE_PREFIX = "contacts-user/"
USER_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
IDEMPOTENCY_RETENTION = timedelta(days=7)
"""How long a journaled idempotency key is remembered (keys older than this are forgotten)."""

SNAPSHOT_VERSION = 1
SNAPSHOT_GROWTH = 10
"""A large user's snapshot interval is at least its contact count divided by this."""


def check_user_id(user_id: str) -> str:
    """The user id if it is 1 to 64 letters, digits, ``.``, ``_`` or ``-``; else ``Invalid``."""
    if not isinstance(user_id, str) or not USER_ID.match(user_id):
        raise Invalid([("user_id", "must be 1 to 64 letters, digits, '.', '_' or '-'")])
    return user_id


def persistence_id(user_id: str) -> str:
    """The journal of one user: namespaced so no other actor type can collide with it."""
    return PERSISTENCE_PREFIX + check_user_id(user_id)


# -- what the journal holds ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Journaled:
    """A domain event as journaled: plus the idempotency key of the request that caused it."""

    event: Event
    idempotency_key: str | None = None
    fingerprint: str | None = None


def encode_journaled(item: Journaled) -> tuple[str, int, dict[str, Any]]:
    """``(type, version, payload)``: the domain payload plus the key, if any."""
    type_name, version, payload = event_to_payload(item.event)
    if item.idempotency_key is not None:
        payload["idempotency_key"] = item.idempotency_key
        if item.fingerprint is not None:
            payload["fingerprint"] = item.fingerprint
    return type_name, version, payload


def decode_journaled(type_name: str, version: int, payload: Mapping[str, Any]) -> Journaled:
    """Inverse of :func:`encode_journaled`; unknown types or versions fail loudly."""
    data = dict(payload)
    key = data.pop("idempotency_key", None)
    fingerprint = data.pop("fingerprint", None)
    return Journaled(event_from_payload(type_name, version, data), key, fingerprint)


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """What a journaled idempotency key produced: which contact, how, from which body."""

    contact_id: str
    fingerprint: str | None
    at: datetime
    outcome: str = "created"


@dataclass
class UserState:
    """The user's contacts plus the idempotency keys seen within the retention window."""

    contacts: ContactsState = field(default_factory=ContactsState)
    keys: dict[str, KeyEntry] = field(default_factory=dict)

    def apply(self, item: Journaled) -> UserState:
        """Fold one journaled event in (in place: the state is owned by one actor)."""
        evolve(self.contacts, item.event)
        if item.idempotency_key is not None:
            at = item.event.at
            self.keys.pop(item.idempotency_key, None)
            outcome = "created" if isinstance(item.event, ContactCreated) else "updated"
            self.keys[item.idempotency_key] = KeyEntry(
                item.event.contact_id, item.fingerprint, at, outcome
            )
            self._forget_before(at - IDEMPOTENCY_RETENTION)
        return self

    def _forget_before(self, cutoff: datetime) -> None:
        # Keys are kept in journal order, so the oldest ones come first.
        while self.keys:
            oldest_key = next(iter(self.keys))
            if self.keys[oldest_key].at >= cutoff:
                return
            del self.keys[oldest_key]


def encode_state(state: UserState) -> dict[str, Any]:
    """The snapshot payload: the domain's snapshot plus the remembered idempotency keys."""
    return {
        "contacts": state_to_snapshot(state.contacts),
        "keys": [
            [key, entry.contact_id, entry.fingerprint, entry.at.isoformat(), entry.outcome]
            for key, entry in state.keys.items()
        ],
    }


def decode_state(payload: Mapping[str, Any]) -> UserState:
    keys = {
        key: KeyEntry(contact_id, fingerprint, datetime.fromisoformat(at), outcome)
        for key, contact_id, fingerprint, at, outcome in payload["keys"]
    }
    return UserState(state_from_snapshot(payload["contacts"]), keys)


# -- the messages a user actor understands -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Get:
    contact_id: str


@dataclass(frozen=True, slots=True)
class ListContacts:
    limit: int = 50
    cursor: str | None = None
    q: str | None = None


@dataclass(frozen=True, slots=True)
class Create:
    data: Mapping[str, Any]
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Update:
    contact_id: str
    changes: Mapping[str, Any]
    expected_version: int | None = None


@dataclass(frozen=True, slots=True)
class Remove:
    contact_id: str
    expected_version: int | None = None


@dataclass(frozen=True, slots=True)
class Import:
    """One chunk of rows: decided together and persisted with one ``persist_all``."""

    rows: Sequence[ImportRow]
    policy: DuplicatePolicy = "skip"
    dry_run: bool = False
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Count:
    """How many contacts the user has (for stats)."""


Message = Get | ListContacts | Create | Update | Remove | Import | Count


@dataclass(frozen=True, slots=True)
class Failed:
    """The reply to a command the domain refused; the backend raises ``error``."""

    error: BackendError


Persist = Callable[[list[Journaled]], Awaitable[None]]


def fingerprint(data: Mapping[str, Any]) -> str:
    """A digest of a request body, to refuse one idempotency key reused for another body."""
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def new_contact_id() -> str:
    return str(uuid.uuid4())


def to_backend_error(error: DomainError) -> BackendError:
    if isinstance(error, ValidationError):
        return Invalid([(e.field or "body", e.message) for e in error.errors])
    if isinstance(error, ContactNotFound):
        return NotFound(str(error))
    if isinstance(error, VersionConflict):
        return Conflict(str(error))
    return BackendError(str(error))


_OUTCOMES = {
    "created": "created",
    "updated": "updated",
    "unchanged": "skipped",
    "skipped-duplicate": "skipped",
    "rejected": "rejected",
}


def outcome_json(outcome: RowOutcome, *, replayed: bool = False) -> dict[str, Any]:
    """One import row's outcome as the backend reports it."""
    result: dict[str, Any] = {
        "row": outcome.ref,
        "outcome": _OUTCOMES[outcome.status],
        "id": outcome.contact_id,
        "errors": [{"field": e.field, "message": e.message} for e in outcome.errors],
    }
    if outcome.status == "unchanged":
        result["reason"] = "duplicate with nothing to change"
    elif outcome.reason and outcome.status != "rejected":
        result["reason"] = outcome.reason
    if replayed:
        result["reason"] = "already imported with this Idempotency-Key"
    return result


class UserCommands:
    """The command side of one user, independent of the actor machinery that calls it.

    ``handle`` decides, calls ``persist`` with the events (which must return only once they
    are durable and folded into ``state``), and returns the reply.
    """

    def __init__(self, user_id: str, *, region: str | None = None) -> None:
        self.user_id = user_id
        self.region = region

    async def handle(self, state: UserState, message: Message, persist: Persist) -> Any:
        try:
            return await self._handle(state, message, persist)
        except DomainError as error:
            return Failed(to_backend_error(error))
        except BackendError as error:
            return Failed(error)

    async def _handle(self, state: UserState, message: Message, persist: Persist) -> Any:
        contacts = state.contacts
        if isinstance(message, Get):
            return contact_to_dict(get_contact(contacts, message.contact_id))
        if isinstance(message, ListContacts):
            page = (
                search_contacts(contacts, message.q, message.limit, message.cursor)
                if message.q
                else list_contacts(contacts, message.limit, message.cursor)
            )
            return {"items": [contact_to_dict(c) for c in page.items],
                    "next_cursor": page.next_cursor}
        if isinstance(message, Count):
            return len(contacts)
        now = datetime.now(UTC)
        if isinstance(message, Create):
            return await self._create(state, message, now, persist)
        if isinstance(message, Update):
            command = UpdateContact(message.contact_id, message.changes, message.expected_version)
            events = decide(contacts, command, now, new_contact_id, region=self.region)
            await persist([Journaled(e) for e in events])
            return contact_to_dict(get_contact(contacts, message.contact_id))
        if isinstance(message, Remove):
            before = get_contact(contacts, message.contact_id)
            remove = RemoveContact(message.contact_id, message.expected_version)
            events = decide(contacts, remove, now, new_contact_id, region=self.region)
            await persist([Journaled(e) for e in events])
            return contact_to_dict(before)
        if isinstance(message, Import):
            return await self._import(state, message, now, persist)
        raise TypeError(f"a user actor does not understand {message!r}")

    async def _create(
        self, state: UserState, message: Create, now: datetime, persist: Persist
    ) -> ContactJson:
        key = message.idempotency_key
        digest = fingerprint(message.data) if key is not None else None
        if key is not None and (entry := state.keys.get(key)) is not None:
            if entry.fingerprint is not None and entry.fingerprint != digest:
                raise Invalid([(
                    "Idempotency-Key",
                    "was already used for a request with a different body",
                )])
            contact = state.contacts.get(entry.contact_id)
            if contact is None:
                raise NotFound(
                    f"contact {entry.contact_id!r}, created under this Idempotency-Key, "
                    "has been removed since"
                )
            return contact_to_dict(contact)
        events = decide(
            state.contacts, CreateContact(message.data), now, new_contact_id, region=self.region
        )
        await persist([Journaled(e, key, digest) for e in events])
        return contact_to_dict(get_contact(state.contacts, events[0].contact_id))

    async def _import(
        self, state: UserState, message: Import, now: datetime, persist: Persist
    ) -> list[dict[str, Any]]:
        key = message.idempotency_key
        done: dict[int, dict[str, Any]] = {}
        fresh: list[ImportRow] = []
        for row in message.rows:
            entry = state.keys.get(f"{key}#{row.ref}") if key is not None else None
            if entry is None:
                fresh.append(row)
            else:
                done[row.ref] = {"row": row.ref, "outcome": entry.outcome, "id": entry.contact_id,
                                 "errors": [],
                                 "reason": "already imported with this Idempotency-Key"}
        plan = plan_import(
            state.contacts, ImportContacts(fresh, message.policy), now, new_contact_id,
            region=self.region,
        )
        writes = iter(plan.events)
        journaled: list[Journaled] = []
        for outcome in plan.outcomes:
            report = outcome_json(outcome)
            if outcome.status in ("created", "updated"):
                row_key = f"{key}#{outcome.ref}" if key is not None else None
                journaled.append(Journaled(next(writes), row_key))
                if message.dry_run and outcome.status == "created":
                    report["id"] = None
            done[outcome.ref] = report
        if not message.dry_run:
            await persist(journaled)
        return [done[row.ref] for row in message.rows]


# -- the actor -------------------------------------------------------------------------------


class ContactsCodec(EventCodec[Journaled]):
    """Journals domain events with their idempotency key; the domain upcasts old versions."""

    def encode(self, event: Journaled) -> EncodedEvent:
        type_name, version, payload = encode_journaled(event)
        return EncodedEvent(type_name, version, payload)

    def current_version(self, type_name: str) -> int:
        try:
            return EVENT_VERSIONS[type_name]
        except KeyError:
            raise JournalIntegrityError(f"unknown contacts event type {type_name!r}") from None

    def from_payload(self, type_name: str, payload: Json) -> Journaled:
        return decode_journaled(type_name, self.current_version(type_name), payload)

    def decode(
        self, type_name: str, version: int, payload: Json, where: str = "event"
    ) -> Journaled:
        try:
            return decode_journaled(type_name, version, payload)
        except (DomainError, KeyError, TypeError, ValueError) as exc:
            raise JournalIntegrityError(f"{where}: {exc}") from exc


CrashPolicy = Callable[[object, BaseException, Any], Any]


class UserActor(PersistentActor[UserState]):
    """The persistent actor of one user, persistence id ``contacts-user/<user_id>``.

    A snapshot is taken once ``snapshot_every`` events (500) were written since the last one,
    at most one per write (a ``persist_all`` of an import chunk snapshots once, at its end).
    Encoding a snapshot costs time in proportion to the user's contacts, so for a large user
    the interval grows to a tenth of the contact count: taking snapshots stays linear in the
    journal's length (an import of 100,000 contacts would otherwise encode 200 ever larger
    snapshots), while recovery still replays at most that tenth after the snapshot.
    """

    snapshot_version = SNAPSHOT_VERSION

    def __init__(
        self,
        user_id: str,
        *,
        region: str | None = None,
        snapshot_every: int | None = 500,
        on_crash_policy: CrashPolicy | None = None,
    ) -> None:
        self.user_id = check_user_id(user_id)
        self.persistence_id = persistence_id(user_id)
        self.events = ContactsCodec()
        self.snapshot_every = None  # see snapshot_when: one snapshot per write at most
        self.every = snapshot_every
        self.commands = UserCommands(user_id, region=region)
        self.policy = on_crash_policy
        self._batch = (0, 0)
        self._last_snapshot: int | None = None

    def initial_state(self) -> UserState:
        return UserState()

    def on_event(self, state: UserState, event: Journaled) -> UserState:
        return state.apply(event)

    async def on_command(
        self, state: UserState, command: Any, ctx: PersistentContext[UserState]
    ) -> None:
        if self._last_snapshot is None:
            report = ctx.last_recovery
            self._last_snapshot = (report.snapshot_sequence_nr or 0) if report else 0

        async def persist(items: list[Journaled]) -> None:
            if items:
                start = ctx.sequence_nr
                self._batch = (start, start + len(items))
                await ctx.persist_all(items)

        ctx.reply(await self.commands.handle(state, command, persist))

    def on_recovery_complete(self, state: UserState) -> None:
        self._last_snapshot = None  # read from ctx.last_recovery at the next command

    def snapshot_when(self, sequence_nr: int, state: UserState, event: Any) -> bool:
        every = self.every
        if every is None or sequence_nr != self._batch[1]:
            return False
        last = self._last_snapshot or 0
        if sequence_nr - last < max(every, len(state.contacts) // SNAPSHOT_GROWTH):
            return False
        self._last_snapshot = sequence_nr
        return True

    def encode_snapshot(self, state: UserState) -> Json:
        return encode_state(state)

    def decode_snapshot(self, payload: Json, version: int) -> UserState:
        if version != SNAPSHOT_VERSION:
            raise JournalIntegrityError(
                f"snapshot of {self.persistence_id!r} has version {version}, "
                f"this code reads {SNAPSHOT_VERSION}"
            )
        return decode_state(payload)

    def on_crash(
        self, msg: object, error: BaseException, ctx: PersistentContext[UserState]
    ) -> Any:
        if self.policy is None:
            return None
        return self.policy(msg, error, ctx)
