"""Read-side functions over a state or a journal: get, list, search, history, as-of."""

from __future__ import annotations

import base64
import binascii
import json
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contacts_cli.domain.card import card_summary
from contacts_cli.domain.decide import evolve
from contacts_cli.domain.errors import ContactNotFound, ValidationError
from contacts_cli.domain.events import ContactCreated, ContactUpdated, Event
from contacts_cli.domain.model import (
    CARD_FIELD,
    Contact,
    contact_to_dict,
    format_timestamp,
    new_contact,
    require_aware,
)
from contacts_cli.domain.search_index import (
    ALL,
    PHONES,
    TEXT_FIELDS,
    SearchIndex,
    Steps,
    field_text,
    fold,
    run_steps,
)
from contacts_cli.domain.state import ContactsState, SortKey, require_contact, sort_key
from contacts_cli.domain.validation import phone_digits

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000

SEARCH_FIELDS: dict[str, str] = {
    "name": "name",
    "email": "emails",
    "emails": "emails",
    "phone": "phones",
    "phones": "phones",
    "tel": "phones",
    "company": "company",
    "org": "company",
    "title": "title",
    "address": "address",
    "birthday": "birthday",
    "notes": "notes",
    "note": "notes",
    "label": "labels",
    "labels": "labels",
}
"""Field names (and aliases) a search term may be limited to with ``field:term``."""

_PHONE_LIKE = re.compile(r"[\d\s+\-().]*\d[\d\s+\-().]*")
_FIELD_PREFIX = re.compile(r"([A-Za-z_]+):(.*)", re.DOTALL)
_TOKEN = re.compile(r'(?P<prefix>[A-Za-z_]+:)?"(?P<phrase>[^"]*)"|(?P<word>\S+)')


@dataclass(frozen=True, slots=True)
class Page:
    """One page of contacts in name order; pass ``next_cursor`` back for the next page."""

    items: list[Contact]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Term:
    field: str | None
    text: str


def get_contact(state: ContactsState, contact_id: str) -> Contact:
    return require_contact(state, contact_id)


def list_contacts(
    state: ContactsState, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> Page:
    """Contacts sorted by name (case-insensitive) then id, ``limit`` at a time."""
    return _page(state, _check_limit(limit), cursor)


def search_contacts(
    state: ContactsState, query: str, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> Page:
    """Contacts matching every term of ``query``, in name order, paged like ``list``."""
    return run_steps(search_steps(state, query, limit, cursor))


def search_steps(
    state: ContactsState, query: str, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> Steps[Page]:
    """:func:`search_contacts` as steps (see :mod:`~contacts_cli.domain.search_index`), so
    the service can yield to the event loop between them. The first search of a state builds
    its index (``state.search_index``); the state's writes are noted in it, and the next
    search catches up with them (or builds a new one after many)."""
    terms = parse_query(query)
    limit = _check_limit(limit)
    if not terms:
        return _page(state, limit, cursor)
    after = decode_cursor(cursor) if cursor else None
    index = state.search_index
    if index is None or index.outdated:
        index = yield from SearchIndex.build(state)
        state.search_index = index
    found = yield from index.search([_alternatives(term) for term in terms], after, limit + 1)
    items = found[:limit]
    more = len(found) > limit
    return Page(items, encode_cursor(sort_key(items[-1])) if more else None)


def _alternatives(term: Term) -> list[tuple[str, str]]:
    """Where a term may match (any one will do): the rules of :func:`matches`."""
    if term.field == PHONES:
        digits = phone_digits(term.text)
        return [(PHONES, digits)] if digits else []
    if term.field is not None:
        return [(term.field, term.text)]
    if _PHONE_LIKE.fullmatch(term.text) and (digits := phone_digits(term.text)):
        return [(ALL, term.text), (PHONES, digits)]
    return [(ALL, term.text)]


def parse_query(query: str) -> list[Term]:
    """Split a query into terms that must all match.

    Terms are separated by whitespace; ``"a phrase"`` is one term; ``field:term`` or
    ``field:"a phrase"`` limits a term to one field. A quoted term is never read as a
    field prefix, so ``"http://x"`` searches for that text. Single quotes are literal.
    """
    terms: list[Term] = []
    for match in _TOKEN.finditer(query):
        prefix, phrase, word = match.group("prefix"), match.group("phrase"), match.group("word")
        if word is not None:
            if '"' in word:
                raise ValidationError.single("q", f"unbalanced '\"' in {word!r}")
            split = _FIELD_PREFIX.fullmatch(word)
            if split is None:
                terms.append(Term(None, fold(word)))
                continue
            prefix, phrase = split.group(1) + ":", split.group(2)
        if prefix is None:
            if phrase.strip():
                terms.append(Term(None, fold(phrase)))
            continue
        name = prefix[:-1]
        target = SEARCH_FIELDS.get(name.lower())
        if target is None:
            known = ", ".join(sorted(set(SEARCH_FIELDS.values())))
            raise ValidationError.single(
                "q", f"unknown field {name!r} in {match.group()!r} (fields: {known})"
            )
        if not phrase.strip():
            raise ValidationError.single("q", f"{match.group()!r} has no term after the colon")
        terms.append(Term(target, fold(phrase)))
    return terms


def search_doc(contact: Contact) -> dict[str, str]:
    """The folded text of each field (values joined by NUL, so no match spans two values),
    ``""`` for all text fields together: what :func:`matches` looks in, one contact at a
    time (the index looks in the same texts: :func:`.search_index.field_text`)."""
    doc = {name: field_text(contact, name) for name in TEXT_FIELDS}
    doc[PHONES] = field_text(contact, PHONES)
    doc[ALL] = field_text(contact, ALL)
    return doc


def matches(contact: Contact, terms: Iterable[Term], doc: dict[str, str] | None = None) -> bool:
    """True when every term matches (substring, case-insensitive; phones by digits): the
    reference a search through the index must agree with, contact by contact."""
    fields = search_doc(contact) if doc is None else doc
    return all(_term_matches(fields, term) for term in terms)


def _term_matches(doc: dict[str, str], term: Term) -> bool:
    if term.field == "phones":
        return _phone_matches(doc, term.text)
    if term.field is not None:
        return term.text in doc[term.field]
    if term.text in doc[""]:
        return True
    return bool(_PHONE_LIKE.fullmatch(term.text)) and _phone_matches(doc, term.text)


def _phone_matches(doc: dict[str, str], text: str) -> bool:
    digits = phone_digits(text)
    return bool(digits) and digits in doc["phones"]


def _check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationError.single("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return limit


def encode_cursor(key: SortKey) -> str:
    raw = json.dumps(list(key), ensure_ascii=False, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> SortKey:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValidationError.single("cursor", "is not a valid cursor") from None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise ValidationError.single("cursor", "is not a valid cursor")
    return (value[0], value[1])


def _page(state: ContactsState, limit: int, cursor: str | None) -> Page:
    """A page of every contact in name order (a search pages through its index instead)."""
    order = state.ordered_keys()
    start = bisect_right(order, decode_cursor(cursor)) if cursor else 0
    items: list[Contact] = []
    last: SortKey | None = None
    index = start
    while index < len(order) and len(items) < limit:
        key = order[index]
        contact = state.get(key[1])
        if contact is not None:
            items.append(contact)
            last = key
        index += 1
    more = len(items) == limit and index < len(order)
    return Page(items, encode_cursor(last) if more and last is not None else None)


# -- history and as-of, over (timestamp, event) pairs read from the journal ---------------


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One change of one contact: when (journal timestamp), what kind, the version it
    produced, the fields it set (``None`` = cleared) and the contact right after it
    (``None`` once removed)."""

    at: datetime
    type: str
    version: int
    changes: dict[str, Any]
    contact: Contact | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": format_timestamp(self.at),
            "type": self.type,
            "version": self.version,
            "changes": self.changes,
            "contact": None if self.contact is None else contact_to_dict(self.contact),
        }


def contact_history(
    contact_id: str, stored: Iterable[tuple[datetime, Event]]
) -> list[HistoryEntry]:
    """The history of one contact (also after removal) from the journal's events in order.

    Raises ContactNotFound when no event concerns the contact.
    """
    entries: list[HistoryEntry] = []
    current: Contact | None = None
    version = 0
    for timestamp, event in stored:
        if event.contact_id != contact_id:
            continue
        version += 1
        if isinstance(event, ContactCreated):
            changes = _listed(event.fields)
            current = new_contact(contact_id, event.fields, event.at)
        elif isinstance(event, ContactUpdated):
            changes = _listed(event.changes)
            if current is None:
                raise ValueError(f"ContactUpdated before ContactCreated for {contact_id!r}")
            current = current.with_changes(event.changes, event.at)
        else:
            changes = {}
            current = None
        entries.append(HistoryEntry(timestamp, type(event).__name__, version, changes, current))
    if not entries:
        raise ContactNotFound(contact_id)
    return entries


def _listed(values: Mapping[str, Any]) -> dict[str, Any]:
    """A change as a history shows it: lists for tuples, a stored vCard as its lines."""
    return {
        k: list(v) if isinstance(v, tuple) else card_summary(v) if k == CARD_FIELD else v
        for k, v in values.items()
    }


def state_as_of(stored: Iterable[tuple[datetime, Event]], at: datetime) -> ContactsState:
    """The contacts as they were at ``at``: fold the events with timestamp <= ``at``."""
    require_aware(at)
    state = ContactsState()
    for timestamp, event in stored:
        if timestamp <= at:
            evolve(state, event)
    return state
