"""The per-user contacts state with the indexes that keep commands and queries cheap.

The state is owned by exactly one actor. ``evolve`` (in ``decide.py``) updates it in place
after each persisted event, which keeps a write O(log n) instead of copying 100,000
contacts; ``decide`` only reads it. Indexes:

* ``contact id -> Contact``;
* email key (case-insensitive) ``-> [contact ids]`` in creation order, for duplicates;
* the name order ``(casefolded name, id)``, maintained lazily: writes append to a pending
  list and mark stale entries, the next ordered read merges them (timsort on runs).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from contacts_cli.domain.errors import ContactNotFound
from contacts_cli.domain.model import Contact, contact_from_dict, contact_to_dict
from contacts_cli.domain.validation import email_key

SNAPSHOT_SCHEMA = 1

SortKey = tuple[str, str]


def sort_key(contact: Contact) -> SortKey:
    """Name order: case-insensitive name, then id to make it total and stable."""
    return (contact.name.casefold(), contact.id)


class ContactsState:
    """All live contacts of one user plus derived indexes (never serialised themselves)."""

    __slots__ = (
        "_by_email",
        "_contacts",
        "_keys",
        "_order",
        "_pending",
        "_stale",
        "search_cache",
    )

    def __init__(self) -> None:
        self._contacts: dict[str, Contact] = {}
        self._by_email: dict[str, list[str]] = {}
        self._keys: dict[str, SortKey] = {}
        self._order: list[SortKey] = []
        self._pending: list[SortKey] = []
        self._stale = False
        self.search_cache: dict[str, dict[str, str]] = {}
        """Per contact id, the folded text the search uses; writes drop stale entries."""

    def copy(self) -> ContactsState:
        """An independent state with the same contacts (contacts themselves are immutable)."""
        other = ContactsState()
        other._contacts = dict(self._contacts)
        other._by_email = {key: list(ids) for key, ids in self._by_email.items()}
        other._keys = dict(self._keys)
        other._order = list(self.ordered_keys())
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
        return list(self._by_email.get(email_key(email), ()))

    def ordered_keys(self) -> list[SortKey]:
        """The name order of all live contacts; callers must not mutate the list."""
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

    # -- writes (only evolve and snapshot loading call these) ----------------------------
    def put(self, contact: Contact) -> None:
        """Insert or replace a contact, keeping every index in step."""
        previous = self._contacts.get(contact.id)
        self._contacts[contact.id] = contact
        self.search_cache.pop(contact.id, None)
        if previous is not None:
            if previous.emails != contact.emails:
                self._unindex_emails(previous)
                self._index_emails(contact)
        else:
            self._index_emails(contact)
        key = sort_key(contact)
        old_key = self._keys.get(contact.id)
        if old_key != key:
            self._keys[contact.id] = key
            self._pending.append(key)
            if old_key is not None:
                self._stale = True

    def discard(self, contact_id: str) -> Contact | None:
        contact = self._contacts.pop(contact_id, None)
        if contact is not None:
            self.search_cache.pop(contact_id, None)
            self._unindex_emails(contact)
            del self._keys[contact_id]
            self._stale = True
        return contact

    def _index_emails(self, contact: Contact) -> None:
        for email in contact.emails:
            self._by_email.setdefault(email_key(email), []).append(contact.id)

    def _unindex_emails(self, contact: Contact) -> None:
        for email in contact.emails:
            key = email_key(email)
            ids = self._by_email.get(key)
            if ids is None:
                continue
            if contact.id in ids:
                ids.remove(contact.id)
            if not ids:
                del self._by_email[key]


def state_to_snapshot(state: ContactsState) -> dict[str, Any]:
    """A JSON snapshot: the contacts in creation order; indexes are rebuilt on load."""
    return {"schema": SNAPSHOT_SCHEMA, "contacts": [contact_to_dict(c) for c in state]}


def state_from_snapshot(data: Mapping[str, Any]) -> ContactsState:
    """Rebuild a state (and its indexes) from :func:`state_to_snapshot` output.

    A snapshot that does not load raises ``ValueError``: recovery must fail loudly rather
    than continue from a partial state.
    """
    schema = data.get("schema")
    if schema != SNAPSHOT_SCHEMA:
        raise ValueError(f"unsupported contacts snapshot schema {schema!r}")
    state = ContactsState()
    try:
        for item in data["contacts"]:
            contact = contact_from_dict(item)
            if contact.id in state:
                raise ValueError(f"contact {contact.id!r} appears twice")
            state.put(contact)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"corrupt contacts snapshot: {exc!r}") from exc
    return state


def require_contact(state: ContactsState, contact_id: str) -> Contact:
    """The live contact with this id, else :class:`ContactNotFound`."""
    contact = state.get(contact_id)
    if contact is None:
        raise ContactNotFound(contact_id)
    return contact
