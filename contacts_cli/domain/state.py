"""The per-user contacts state with the indexes that keep commands and queries cheap.

The state is owned by exactly one actor. ``evolve`` (in ``decide.py``) updates it in place
after each persisted event, which keeps a write O(log n) instead of copying 100,000
contacts; ``decide`` only reads it. Indexes:

* ``contact id -> Contact``;
* email key (case-insensitive) ``-> [contact ids]`` in creation order, for duplicates;
* the name order ``(casefolded name, id)``, maintained lazily: writes append to a pending
  list and mark stale entries, the next ordered read merges them (timsort on runs);
* the search index (:mod:`~contacts_cli.domain.search_index`), built by the first search:
  writes are noted in it, the next search catches up.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from itertools import compress, repeat
from operator import attrgetter, ne, sub
from typing import TYPE_CHECKING, Any

from contacts_cli.domain.card import card_from_json, card_to_json
from contacts_cli.domain.errors import ContactNotFound
from contacts_cli.domain.model import (
    Contact,
    contact_from_dict,
    format_timestamp,
    parse_timestamp,
)
from contacts_cli.domain.validation import email_key

if TYPE_CHECKING:
    from contacts_cli.domain.search_index import SearchIndex

SNAPSHOT_SCHEMA = 3
"""1: a list of contact objects; 2: columns; 3: columns plus ``card`` (stored vCards)."""

SortKey = tuple[str, str]


def sort_key(contact: Contact) -> SortKey:
    """Name order: case-insensitive name, then id to make it total and stable."""
    return (contact.name.casefold(), contact.id)


class ContactsState:
    """All live contacts of one user plus derived indexes (never serialised themselves).

    The email index and the name order are built on first use, so a state loaded from a
    snapshot is ready as soon as its contacts are (a restart that only adds a contact never
    pays for them); once built, every write keeps them in step.
    """

    __slots__ = (
        "_by_email",
        "_contacts",
        "_keys",
        "_order",
        "_pending",
        "_stale",
        "search_index",
    )

    def __init__(self) -> None:
        self._contacts: dict[str, Contact] = {}
        self._by_email: dict[str, list[str]] | None = None
        self._keys: dict[str, SortKey] | None = None
        self._order: list[SortKey] = []
        self._pending: list[SortKey] = []
        self._stale = False
        self.search_index: SearchIndex | None = None
        """Built by the first search (``queries.search_steps``); every write keeps it."""

    @classmethod
    def of(cls, contacts: dict[str, Contact]) -> ContactsState:
        """A state holding ``contacts`` (id -> contact, creation order); takes the dict."""
        state = cls()
        state._contacts = contacts
        return state

    def copy(self) -> ContactsState:
        """An independent state with the same contacts (contacts themselves are immutable)."""
        other = ContactsState.of(dict(self._contacts))
        if self._by_email is not None:
            other._by_email = {key: list(ids) for key, ids in self._by_email.items()}
        if self._keys is not None:
            other._order = list(self.ordered_keys())
            other._keys = dict(self._keys)
        return other

    # -- reads ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._contacts)

    def __contains__(self, contact_id: object) -> bool:
        return contact_id in self._contacts

    def __iter__(self) -> Iterator[Contact]:
        """Contacts in creation order (the snapshot order)."""
        return iter(self._contacts.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ContactsState):
            return NotImplemented
        return self._contacts == other._contacts and list(self._contacts) == list(other._contacts)

    def __repr__(self) -> str:
        return f"ContactsState({len(self)} contacts)"

    def get(self, contact_id: str) -> Contact | None:
        return self._contacts.get(contact_id)

    def ids_with_email(self, email: str) -> list[str]:
        """Ids of live contacts having ``email`` (any case), oldest first."""
        return list(self._email_index().get(email_key(email), ()))

    def first_with_email(self, email: str) -> str | None:
        """The oldest live contact having ``email`` (any case), without copying a list."""
        ids = self._email_index().get(email_key(email))
        return ids[0] if ids else None

    def ordered_keys(self) -> list[SortKey]:
        """The name order of all live contacts; callers must not mutate the list."""
        if self._keys is None:
            self._keys = {c.id: sort_key(c) for c in self._contacts.values()}
            self._order = sorted(self._keys.values())
            self._pending.clear()
            self._stale = False
            return self._order
        if self._pending:
            self._order.extend(self._pending)
            self._pending.clear()
            self._order.sort()
        if self._stale:
            keys = self._keys
            fresh: list[SortKey] = []
            previous: SortKey | None = None
            for key in self._order:
                if key != previous and keys.get(key[1]) == key:
                    fresh.append(key)
                previous = key
            self._order = fresh
            self._stale = False
        return self._order

    def _email_index(self) -> dict[str, list[str]]:
        index = self._by_email
        if index is None:
            index = {}
            for contact in self._contacts.values():
                for email in contact.emails:
                    index.setdefault(email_key(email), []).append(contact.id)
            self._by_email = index
        return index

    # -- writes (only evolve and snapshot loading call these) ----------------------------
    def put(self, contact: Contact) -> None:
        """Insert or replace a contact, keeping every built index in step."""
        previous = self._contacts.get(contact.id)
        self._contacts[contact.id] = contact
        if self.search_index is not None:
            self.search_index.put(previous, contact)
        if self._by_email is not None:
            if previous is None:
                self._index_emails(contact)
            elif previous.emails != contact.emails:
                self._unindex_emails(previous)
                self._index_emails(contact)
        keys = self._keys
        if keys is not None:
            key = (contact.name.casefold(), contact.id)
            old_key = keys.get(contact.id)
            if old_key != key:
                keys[contact.id] = key
                self._pending.append(key)
                if old_key is not None:
                    self._stale = True

    def add(self, contact: Contact) -> None:
        """Insert a contact whose id is new (what a ``ContactCreated`` does): :meth:`put`
        without looking for a previous version; raises ``ValueError`` if the id is taken."""
        contacts = self._contacts
        if contact.id in contacts:
            raise ValueError(f"ContactCreated for existing contact {contact.id!r}")
        contacts[contact.id] = contact
        if self.search_index is not None:
            self.search_index.put(None, contact)
        by_email = self._by_email
        if by_email is not None:
            for email in contact.emails:
                by_email.setdefault(email_key(email), []).append(contact.id)
        if self._keys is not None:
            key = (contact.name.casefold(), contact.id)
            self._keys[contact.id] = key
            self._pending.append(key)

    def discard(self, contact_id: str) -> Contact | None:
        contact = self._contacts.pop(contact_id, None)
        if contact is not None:
            if self.search_index is not None:
                self.search_index.remove(contact)
            if self._by_email is not None:
                self._unindex_emails(contact)
            if self._keys is not None:
                del self._keys[contact_id]
                self._stale = True
        return contact

    def _index_emails(self, contact: Contact) -> None:
        assert self._by_email is not None
        for email in contact.emails:
            self._by_email.setdefault(email_key(email), []).append(contact.id)

    def _unindex_emails(self, contact: Contact) -> None:
        assert self._by_email is not None
        for email in contact.emails:
            key = email_key(email)
            ids = self._by_email.get(key)
            if ids is None:
                continue
            if contact.id in ids:
                ids.remove(contact.id)
            if not ids:
                del self._by_email[key]


COLUMNS: tuple[str, ...] = (
    "id", "name", "emails", "phones", "company", "title", "address", "birthday", "notes",
    "labels", "created_at", "updated_at", "version", "card",
)
"""The columns of a schema-3 snapshot, in :class:`Contact` field order (schema 2 lacks
``card``: it predates stored vCards)."""
_LIST_COLUMNS = frozenset(("emails", "phones", "labels"))
_TIME_COLUMNS = frozenset(("created_at", "updated_at"))


def iter_snapshot_columns(contacts: Sequence[Contact]) -> Iterator[tuple[str, list[Any]]]:
    """The contacts as schema-3 columns, one ``(name, values)`` at a time (so a caller can
    yield to the event loop between them), then ``("times", ...)``: timestamps are stored
    as indexes into that table of the distinct ones (an import chunk shares one)."""
    times: dict[datetime, int] = {}
    for name in COLUMNS:
        values: list[Any] = list(map(attrgetter(name), contacts))
        if name in _TIME_COLUMNS:
            values = [times.setdefault(t, len(times)) for t in values]
        elif name == "card":
            values = [None if card is None else card_to_json(card) for card in values]
        yield name, values
    yield "times", [format_timestamp(t) for t in times]


def pack_column(values: list[Any]) -> Any:
    """A column as stored: ``{"same": v}`` when every value is ``v`` (empty fields, version
    1); for integers, ``{"runs": [[v, n], ...]}`` (n times v: timestamps an import chunk
    shares) or ``{"steps": [[v, n], ...]}`` (v, v + 1, ... n values: positions) when that is
    much shorter; else the list itself."""
    if len(values) > 1 and values.count(values[0]) == len(values) and (
        not isinstance(values[0], int | float) or all(type(v) is type(values[0]) for v in values)
    ):  # (True == 1 == 1.0: numbers must also agree in type)
        return {"same": values[0]}
    if len(values) < 8 or set(map(type, values)) != {int}:
        return values
    limit = len(values) // 4
    for kind in ("runs", "steps"):
        breaks = _breaks(values, kind)
        if len(breaks) < limit:
            starts = [0, *breaks]
            ends = [*breaks, len(values)]
            return {kind: [[values[a], b - a] for a, b in zip(starts, ends, strict=True)]}
    return values


def _breaks(values: list[int], kind: str) -> list[int]:
    """The positions where a new run starts: a value unequal to the one before (``runs``) or
    not one more than it (``steps``). Found with C-level ``map`` and ``compress``: snapshot
    columns hold 100,000 values."""
    if kind == "runs":
        different = map(ne, values[1:], values)
    else:
        different = map(ne, map(sub, values[1:], values), repeat(1))
    return list(compress(range(1, len(values)), different))


def unpack_column(name: str, stored: Any, count: int) -> list[Any]:
    if isinstance(stored, list):
        values = stored
    elif isinstance(stored, dict) and "same" in stored:
        values = [stored["same"]] * count
    elif isinstance(stored, dict) and isinstance(stored.get("runs"), list):
        values = []
        for value, run in stored["runs"]:
            values += [value] * run
    elif isinstance(stored, dict) and isinstance(stored.get("steps"), list):
        values = []
        for start, run in stored["steps"]:
            values += range(start, start + run)
    else:
        raise ValueError(f"column {name!r} is neither a list nor a packed column")
    if len(values) != count:
        raise ValueError(f"column {name!r} does not have {count} values")
    return values


def state_to_snapshot(state: ContactsState) -> dict[str, Any]:
    """A JSON snapshot (schema 3, columnar): contacts in creation order, no indexes."""
    snapshot: dict[str, Any] = {"schema": SNAPSHOT_SCHEMA}
    for name, values in iter_snapshot_columns(list(state)):
        if name in _LIST_COLUMNS:
            values = [list(v) for v in values]
        snapshot[name] = values if name in ("id", "times") else pack_column(values)
    return snapshot


def state_from_snapshot(data: Mapping[str, Any]) -> ContactsState:
    """Rebuild a state from :func:`state_to_snapshot` output (or a schema-1 snapshot, a list
    of contact objects). Indexes are built on first use.

    A snapshot that does not load raises ``ValueError``: recovery must fail loudly rather
    than continue from a partial state.
    """
    schema = data.get("schema")
    if schema not in (1, 2, SNAPSHOT_SCHEMA):
        raise ValueError(f"unsupported contacts snapshot schema {schema!r}")
    try:
        if schema == 1:
            contacts = [contact_from_dict(item) for item in data["contacts"]]
        else:
            contacts = _contacts_from_columns(data)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"corrupt contacts snapshot: {exc!r}") from exc
    by_id = dict(zip([c.id for c in contacts], contacts, strict=True))
    if len(by_id) != len(contacts):
        seen: set[str] = set()
        for contact in contacts:
            if contact.id in seen:
                raise ValueError(f"contact {contact.id!r} appears twice")
            seen.add(contact.id)
    return ContactsState.of(by_id)


def _contacts_from_columns(data: Mapping[str, Any]) -> list[Contact]:
    if not isinstance(data["id"], list):
        raise ValueError("column 'id' is not a list")
    count = len(data["id"])
    columns: list[Any] = []
    times = [parse_timestamp(t) for t in data["times"]]
    for name in COLUMNS:
        if name == "card" and data.get("schema") == 2:
            columns.append([None] * count)
            continue
        values = unpack_column(name, data[name], count)
        if name in _LIST_COLUMNS:
            values = [tuple(v) for v in values]
        elif name in _TIME_COLUMNS:
            values = [times[i] for i in values]
        elif name == "card":
            values = [None if v is None else card_from_json(v) for v in values]
        columns.append(values)
    for name in ("id", "name"):
        if not all(isinstance(v, str) for v in columns[COLUMNS.index(name)]):
            raise ValueError(f"column {name!r} holds a value that is not a string")
    return list(map(Contact, *columns))


def require_contact(state: ContactsState, contact_id: str) -> Contact:
    """The live contact with this id, else :class:`ContactNotFound`."""
    contact = state.get(contact_id)
    if contact is None:
        raise ContactNotFound(contact_id)
    return contact
