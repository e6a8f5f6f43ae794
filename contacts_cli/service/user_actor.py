"""One persistent actor per user: it owns that user's contacts and journals every change.

The actor is a thin shell around the pure domain: ``decide`` turns a command into events, the
actor persists them (one ``persist_all`` per command or import chunk) and only then folds them
with ``evolve`` and replies. Ids and timestamps are made once, in the command handler, and stored
in the events, so a replay reproduces the state exactly.

Idempotency keys travel in the journal with the events they produced, so a retried request is
recognised after a crash and restart as well as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter, itemgetter
from typing import Any

from actors import PersistentActor, PersistentContext
from actors.upcasting import EncodedEvent, EventCodec
from contacts_cli.backends.base import BackendError, Conflict, ContactJson, Invalid, NotFound
from contacts_cli.domain import (
    Contact,
    ContactCreated,
    ContactNotFound,
    ContactRemoved,
    ContactsState,
    ContactUpdated,
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
    evolve,
    get_contact,
    list_contacts,
    plan_import,
    search_contacts,
    state_from_snapshot,
    state_to_snapshot,
)
from contacts_cli.domain.decide import DuplicatePolicy
from contacts_cli.domain.events import EVENT_VERSIONS, event_to_encodable
from contacts_cli.domain.model import EDITABLE_FIELDS
from contacts_cli.domain.state import (
    SNAPSHOT_SCHEMA,
    iter_snapshot_columns,
    pack_column,
    unpack_column,
)
from persistence.engine import Json
from persistence.errors import JournalIntegrityError

PERSISTENCE_PREFIX = "contacts-user/"
USER_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
IDEMPOTENCY_RETENTION = timedelta(days=7)
"""How long a journaled idempotency key is remembered (keys older than this are forgotten)."""

IMPORT_SNAPSHOT_DEFERRAL = 100_000
"""How far (in events) a streaming import may run past the last snapshot before one is taken
anyway, bounding what a crash in the middle of a large import replays."""

SNAPSHOT_VERSION = 2
"""1: a JSON list of contact objects; 2: columns (one list per field), keys as columns too."""
READABLE_SNAPSHOT_VERSIONS = (1, 2)

_SNAPSHOTS: set[asyncio.Task[None]] = set()
"""Snapshot tasks in flight (held here so they are not garbage-collected mid-way)."""


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
    type_name, version, payload = event_to_encodable(item.event)
    if item.idempotency_key is not None:
        payload["idempotency_key"] = item.idempotency_key
        if item.fingerprint is not None:
            payload["fingerprint"] = item.fingerprint
    return type_name, version, payload


def decode_journaled(type_name: str, version: int, payload: Mapping[str, Any]) -> Journaled:
    """Inverse of :func:`encode_journaled`; unknown types or versions fail loudly."""
    key = payload.get("idempotency_key")
    fingerprint = payload.get("fingerprint")
    if (key is not None or fingerprint is not None) and version < EVENT_VERSIONS.get(
        type_name, version
    ):  # upcasters see the domain payload only
        payload = {k: v for k, v in payload.items() if k not in _JOURNAL_ONLY}
    return Journaled(event_from_payload(type_name, version, payload), key, fingerprint)


_JOURNAL_ONLY = frozenset(("idempotency_key", "fingerprint"))
_EDITABLE = frozenset(EDITABLE_FIELDS)


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """What a journaled idempotency key produced: which contact, how, from which body."""

    contact_id: str
    fingerprint: str | None
    at: datetime
    outcome: str = "created"


class UserState:
    """The user's contacts plus the idempotency keys seen within the retention window.

    Keys loaded from a snapshot are decoded on first use: most commands never look at them.
    """

    __slots__ = ("_keys", "_load_keys", "_swept_at", "contacts")

    def __init__(
        self,
        contacts: ContactsState | None = None,
        keys: dict[str, KeyEntry] | None = None,
        *,
        load_keys: Callable[[], dict[str, KeyEntry]] | None = None,
    ) -> None:
        self.contacts = ContactsState() if contacts is None else contacts
        self._keys = keys if keys is not None or load_keys is not None else {}
        self._load_keys = load_keys
        self._swept_at: datetime | None = None

    @property
    def keys(self) -> dict[str, KeyEntry]:
        if self._keys is None:
            assert self._load_keys is not None
            self._keys, self._load_keys = self._load_keys(), None
        return self._keys

    def __repr__(self) -> str:
        return f"UserState({self.contacts!r})"

    def apply(self, item: Journaled) -> UserState:
        """Fold one journaled event in (in place: the state is owned by one actor)."""
        evolve(self.contacts, item.event)
        if item.idempotency_key is not None:
            keys = self.keys
            at = item.event.at
            keys.pop(item.idempotency_key, None)
            outcome = "created" if isinstance(item.event, ContactCreated) else "updated"
            keys[item.idempotency_key] = KeyEntry(
                item.event.contact_id, item.fingerprint, at, outcome
            )
            if at != self._swept_at:  # an import chunk's events share one instant
                self._swept_at = at
                self._forget_before(at - IDEMPOTENCY_RETENTION)
        return self

    def _forget_before(self, cutoff: datetime) -> None:
        # Keys are kept in journal order, so the oldest ones come first.
        keys = self.keys
        while keys:
            oldest_key = next(iter(keys))
            if keys[oldest_key].at >= cutoff:
                return
            del keys[oldest_key]


def encode_state(state: UserState) -> dict[str, Any]:
    """The snapshot payload: the domain's snapshot plus the remembered idempotency keys."""
    contacts = state_to_snapshot(state.contacts)
    return {"contacts": contacts, "keys": _key_columns(list(state.keys.items()), contacts["id"])}


def _key_columns(keys: Sequence[tuple[str, KeyEntry]], ids: Sequence[str]) -> dict[str, Any]:
    """The keys as columns: a key is a shared prefix (up to its last ``#``, an import chunk's)
    plus a suffix; its contact an index into the contacts' ``id`` column while it lives.

    Built a column at a time with C-level ``map``/``zip`` rather than a loop over the keys:
    the closing snapshot of a 100,000-row import holds 100,000 keys."""
    names = list(map(itemgetter(0), keys))
    entries = list(map(itemgetter(1), keys))
    position = dict(zip(ids, range(len(ids)), strict=True))
    prefixes = [key[: key.rfind("#") + 1] for key in names]
    rests = [key[len(prefix):] for key, prefix in zip(names, prefixes, strict=True)]
    contact_ids = list(map(attrgetter("contact_id"), entries))
    prefix_table, prefix_index = _first_seen_index(prefixes)
    time_table, time_index = _first_seen_index(list(map(attrgetter("at"), entries)))
    return {
        "n": len(keys),
        "prefixes": prefix_table,
        "prefix": pack_column(prefix_index),
        "suffix": pack_column([  # a row number: stored as an integer
            int(rest) if rest.isascii() and rest.isdigit() and rest[0] != "0" and len(rest) < 19
            else rest
            for rest in rests
        ]),
        "contact": pack_column(list(map(position.get, contact_ids, contact_ids))),
        "fingerprint": pack_column(list(map(attrgetter("fingerprint"), entries))),
        "at": pack_column(time_index),
        "outcome": pack_column(list(map(attrgetter("outcome"), entries))),
        "times": [t.isoformat() for t in time_table],
    }


def _first_seen_index(values: list[Any]) -> tuple[list[Any], list[int]]:
    """The distinct values in order of first appearance, and each value's index among them."""
    table = list(dict.fromkeys(values))
    index = dict(zip(table, range(len(table)), strict=True))
    return table, list(map(index.__getitem__, values))


def _keys_from_columns(data: Mapping[str, Any], ids: Sequence[str]) -> dict[str, KeyEntry]:
    prefixes = data["prefixes"]
    times = [datetime.fromisoformat(t) for t in data["times"]]
    count = data["n"]
    columns = [unpack_column(name, data[name], count) for name in _KEY_COLUMNS]
    return {
        prefixes[p] + (str(s) if isinstance(s, int) else s):
            KeyEntry(ids[c] if isinstance(c, int) else c, f, times[a], o)
        for p, s, c, f, a, o in zip(*columns, strict=True)
    }


_KEY_COLUMNS = ("prefix", "suffix", "contact", "fingerprint", "at", "outcome")


def _check_key_columns(data: Mapping[str, Any]) -> None:
    """The shape of the key columns, checked at recovery (their values on first use), so a
    damaged snapshot fails recovery loudly rather than a later command."""
    count = data.get("n")
    if type(count) is not int or count < 0:
        raise ValueError("the idempotency keys have no valid count")
    if not isinstance(data.get("prefixes"), list) or not isinstance(data.get("times"), list):
        raise ValueError("the idempotency keys lack their prefix or time table")
    for name in _KEY_COLUMNS:
        column = data.get(name)
        if isinstance(column, list) and len(column) != count:
            raise ValueError(f"key column {name!r} does not have {count} values")
        if not isinstance(column, list | dict):
            raise ValueError(f"key column {name!r} is missing")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


async def encode_state_text(
    contacts: Sequence[Contact], keys: Sequence[tuple[str, KeyEntry]]
) -> str:
    """:func:`encode_state` as JSON text, built a column at a time with the event loop free
    in between: a large user's snapshot never stalls the other users' requests for long."""
    parts: list[str] = []
    ids: list[str] = []
    for name, values in iter_snapshot_columns(contacts):
        if name == "id":
            ids = values
        packed = values if name in ("id", "times") else pack_column(values)
        parts.append(f'"{name}":{_dumps(packed)}')
        await asyncio.sleep(0)
    key_columns = _key_columns(keys, ids)
    await asyncio.sleep(0)
    return (
        f'{{"contacts":{{"schema":{SNAPSHOT_SCHEMA},{",".join(parts)}}},'
        f'"keys":{_dumps(key_columns)}}}'
    )


def decode_state(payload: Mapping[str, Any] | str) -> UserState:
    """Inverse of :func:`encode_state` and :func:`encode_state_text` (and of the row-wise
    format of snapshot version 1)."""
    data = json.loads(payload) if isinstance(payload, str) else payload
    contacts = state_from_snapshot(data["contacts"])
    keys = data["keys"]
    if isinstance(keys, list):
        return UserState(contacts, {
            key: KeyEntry(contact_id, fingerprint, datetime.fromisoformat(at), outcome)
            for key, contact_id, fingerprint, at, outcome in keys
        })
    ids = data["contacts"]["id"]
    if not isinstance(keys, dict) or not isinstance(ids, list):
        raise ValueError("the snapshot's keys are neither rows nor columns")
    _check_key_columns(keys)

    def load_keys() -> dict[str, KeyEntry]:
        try:
            return _keys_from_columns(keys, ids)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise JournalIntegrityError(f"corrupt idempotency keys in snapshot: {exc!r}") from exc

    return UserState(contacts, load_keys=load_keys)


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
class Import:
    """One chunk of rows: decided together and persisted with one ``persist_all``.

    ``more``: the sender has the next chunk of the same import ready, so a snapshot falling
    due now waits for the last chunk (see :class:`UserActor`)."""

    rows: Sequence[ImportRow]
    policy: DuplicatePolicy = "skip"
    dry_run: bool = False
    idempotency_key: str | None = None
    more: bool = False


@dataclass(frozen=True, slots=True)
class Count:
    """How many contacts the user has (for stats)."""


@dataclass(frozen=True, slots=True)
class SnapshotIfBehind:
    """Before a shutdown: snapshot now if at least ``snapshot_every`` events were written
    since the last snapshot, so the next start replays nothing. Replies whether it did."""


Message = (
    Get | ListContacts | Create | UpdateContact | RemoveContact | Import | Count
    | SnapshotIfBehind
)
"""What a user actor understands; an update and a removal are the domain's own commands."""


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
    """A random (version 4) UUID as text, drawn from a pool filled from ``os.urandom`` in
    bulk: ``str(uuid.uuid4())`` per contact was a tenth of an import's domain work."""
    if not _id_pool:
        _id_pool.extend(uuid4_texts(_ID_POOL_SIZE))
    return _id_pool.pop()


def uuid4_texts(count: int) -> list[str]:
    """``count`` random UUIDs in their canonical text form, as ``str(uuid.uuid4())`` gives:
    the version nibble set to 4, the variant bits to ``10``, 122 random bits each."""
    digits = os.urandom(16 * count).hex()
    variant = _VARIANT
    texts = []
    for start in range(0, 32 * count, 32):
        h = digits[start:start + 32]
        texts.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant[h[16]]}{h[17:20]}-{h[20:]}")
    return texts


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
_ID_POOL_SIZE = 1024
_id_pool: list[str] = []
os.register_at_fork(after_in_child=_id_pool.clear)  # a forked child never reuses the parent's


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
        if isinstance(message, UpdateContact):
            events = decide(contacts, message, now, new_contact_id, region=self.region)
            await persist([Journaled(e) for e in events])
            return contact_to_dict(get_contact(contacts, message.contact_id))
        if isinstance(message, RemoveContact):
            before = get_contact(contacts, message.contact_id)
            events = decide(contacts, message, now, new_contact_id, region=self.region)
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


async def drain_snapshots(within: float = 30.0) -> None:
    """Wait (at most ``within`` seconds) for the snapshots being written in the background."""
    pending = [task for task in _SNAPSHOTS if not task.done()]
    if pending:
        await asyncio.wait(pending, timeout=within)


class ContactsCodec(EventCodec[Journaled]):
    """Journals domain events with their idempotency key; the domain upcasts old versions."""

    def encode(self, event: Journaled) -> EncodedEvent:
        type_name, version, payload = encode_journaled(event)
        return EncodedEvent(type_name, version, payload)

    def folds_as_written(self, event: Journaled) -> bool:
        """True for the events the command handlers make: their values come from validation
        (text, ``None``, tuples of text), their fields are editable ones and their instant is
        in UTC, so decoding their payload gives them back equal; anything else is decoded."""
        inner = event.event
        if inner.at.tzinfo is not UTC:
            return False
        if isinstance(inner, ContactCreated):
            return inner.fields.keys() <= _EDITABLE
        if isinstance(inner, ContactUpdated):
            return inner.changes.keys() <= _EDITABLE
        return isinstance(inner, ContactRemoved)

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
    or twice as many events as the last snapshot held contacts if that is more; at most one
    per command (an import chunk's ``persist_all`` snapshots once, at its end). Encoding a
    snapshot costs time in proportion to the user's contacts, so this interval keeps its cost
    amortised O(1) per event, while a crash replays at most two thirds of the journal. It is
    taken after the reply, from a copy of the state as of that sequence number (the contacts
    are immutable, so the copy is one list), and encoded in the background a column at a
    time, so neither this user nor the others wait for it. Before a shutdown
    (:class:`SnapshotIfBehind`, sent by ``LocalBackend.close``) an actor that is
    ``snapshot_every`` events or more behind snapshots once more, so a restart after a big
    import replays nothing.

    While an import streams (its chunks say ``more``), a snapshot falling due waits for the
    import's last chunk, unless the journal is :data:`IMPORT_SNAPSHOT_DEFERRAL` events or more
    past the last snapshot: a snapshot taken half-way through is outdated a moment later, and
    encoding and storing it competes with the import for the CPU. A crash during the import
    replays at most that many events more.
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
        self.snapshot_every = None  # snapshots are taken by _snapshot_in_background
        self.every = snapshot_every
        self.commands = UserCommands(user_id, region=region)
        self.policy = on_crash_policy
        self._last_snapshot: int | None = None
        self._snapshot_size = 0
        self._snapshotting: asyncio.Task[None] | None = None

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
            self._snapshot_size = len(state.contacts) if self._last_snapshot else 0
        if isinstance(command, SnapshotIfBehind):
            behind = self.every is not None and ctx.sequence_nr - self._last_snapshot >= self.every
            if behind:
                await self._wait_for_snapshot()
                self._snapshot_in_background(ctx, state)
            ctx.reply(behind)
            return

        async def persist(items: list[Journaled]) -> None:
            if items:
                await ctx.persist_all(items)

        ctx.reply(await self.commands.handle(state, command, persist))
        if self.snapshot_due(ctx.sequence_nr, state) and not (
            isinstance(command, Import) and command.more
            and ctx.sequence_nr - self._last_snapshot < IMPORT_SNAPSHOT_DEFERRAL
        ):
            self._snapshot_in_background(ctx, state)

    def on_recovery_complete(self, state: UserState) -> None:
        self._last_snapshot = None  # read from ctx.last_recovery at the next command

    def snapshot_due(self, sequence_nr: int, state: UserState) -> bool:
        """Whether enough events were written since the last snapshot (and none is running)."""
        if self.every is None or self._last_snapshot is None:
            return False
        if self._snapshotting is not None and not self._snapshotting.done():
            return False
        interval = max(self.every, 2 * self._snapshot_size)
        return sequence_nr - self._last_snapshot >= interval

    async def _wait_for_snapshot(self) -> None:
        task = self._snapshotting
        if task is not None and not task.done():
            await asyncio.wait([task])

    def _snapshot_in_background(self, ctx: PersistentContext[UserState], state: UserState) -> None:
        sequence_nr = ctx.sequence_nr
        previous, self._last_snapshot = self._last_snapshot, sequence_nr
        previous_size, self._snapshot_size = self._snapshot_size, len(state.contacts)
        contacts = list(state.contacts)
        keys = list(state.keys.items())
        engine = ctx.system.engine
        pid = self.persistence_id

        async def snapshot() -> None:
            try:
                text = await encode_state_text(contacts, keys)
                await engine.save_snapshot(
                    pid, sequence_nr, {"snapshot_version": SNAPSHOT_VERSION, "state": text}
                )
            except Exception as exc:
                if self._last_snapshot == sequence_nr:
                    self._last_snapshot = previous  # try again after the next command
                    self._snapshot_size = previous_size
                self.on_snapshot_failure(exc, sequence_nr)

        task = asyncio.get_running_loop().create_task(snapshot(), name=f"snapshot {pid}")
        self._snapshotting = task
        _SNAPSHOTS.add(task)
        task.add_done_callback(_SNAPSHOTS.discard)

    def encode_snapshot(self, state: UserState) -> Json:
        return encode_state(state)

    def decode_snapshot(self, payload: Json, version: int) -> UserState:
        if version not in READABLE_SNAPSHOT_VERSIONS:
            raise JournalIntegrityError(
                f"snapshot of {self.persistence_id!r} has version {version}, "
                f"this code reads {', '.join(map(str, READABLE_SNAPSHOT_VERSIONS))}"
            )
        return decode_state(payload)

    def on_crash(
        self, msg: object, error: BaseException, ctx: PersistentContext[UserState]
    ) -> Any:
        if self.policy is None:
            return None
        return self.policy(msg, error, ctx)
