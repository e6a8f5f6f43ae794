"""The contact value and its JSON form (used by events, snapshots, HTTP and exports).

:class:`Contact` is a frozen ``msgspec.Struct``, not a frozen dataclass: the state holds one
per contact and an import or a replay builds one per event, and a frozen dataclass's
``__init__`` sets each of its 14 fields through ``object.__setattr__`` (measured: 3.8 us per
contact against 0.23 us, a sixth of an import's domain work). It is not tracked by the
cyclic garbage collector (``gc=False``): every field is immutable text, tuples of text, an
instant or a :class:`~contacts_cli.domain.card.Card`, so no contact can be part of a cycle,
and the collector never scans the hundreds of thousands a large user holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import msgspec
import orjson

from contacts_cli.domain.card import Card

TEXT_FIELDS: tuple[str, ...] = ("name", "company", "title", "address", "birthday", "notes")
LIST_FIELDS: tuple[str, ...] = ("emails", "phones", "labels")
EDITABLE_FIELDS: tuple[str, ...] = (
    "name",
    "emails",
    "phones",
    "company",
    "title",
    "address",
    "birthday",
    "notes",
    "labels",
)
"""The fields a user sets; order is the canonical column order for CSV and display."""

READ_ONLY_FIELDS: tuple[str, ...] = ("id", "created_at", "updated_at", "version")
CARD_FIELD = "card"
"""The key under which an event's ``fields``/``changes`` carry a stored vCard (version 2)."""


class Contact(msgspec.Struct, frozen=True, gc=False):
    """One contact as the state holds it; every value is already validated and normalised.

    ``card`` is the vCard an address-book client stored (see :mod:`contacts_cli.domain.card`),
    ``None`` for a contact only ever written through the CLI, REST or an import.
    """

    id: str
    name: str
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    company: str | None = None
    title: str | None = None
    address: str | None = None
    birthday: str | None = None
    notes: str | None = None
    labels: tuple[str, ...] = ()
    created_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    updated_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    version: int = 1
    card: Card | None = None

    def editable(self) -> dict[str, Any]:
        """The user-editable fields as a JSON-ready dict (lists, not tuples)."""
        return {name: _jsonable(getattr(self, name)) for name in EDITABLE_FIELDS}

    def with_changes(self, changes: Mapping[str, Any], at: datetime) -> Contact:
        """A copy with ``changes`` (editable fields, already normalised, and maybe ``card``)
        applied, version + 1."""
        values: dict[str, Any] = {}
        for name, value in changes.items():
            if name in LIST_FIELDS:
                values[name] = tuple(value) if value else ()
            else:
                values[name] = value
        return msgspec.structs.replace(self, **values, updated_at=at, version=self.version + 1)


def new_contact(contact_id: str, fields: Mapping[str, Any], at: datetime) -> Contact:
    """The contact a ``ContactCreated`` describes: version 1, created and updated at ``at``."""
    if fields.keys() == _EDITABLE:  # every field given (as events hold them): no kwargs
        return Contact(
            contact_id, fields["name"], tuple(fields["emails"]), tuple(fields["phones"]),
            fields["company"], fields["title"], fields["address"], fields["birthday"],
            fields["notes"], tuple(fields["labels"]), at, at, 1,
        )
    values: dict[str, Any] = {
        name: tuple(value) if name in LIST_FIELDS else value for name, value in fields.items()
    }
    return Contact(id=contact_id, **values, created_at=at, updated_at=at, version=1)


_EDITABLE = frozenset(EDITABLE_FIELDS)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, datetime):
        return format_timestamp(value)
    return value


def contact_to_dict(contact: Contact) -> dict[str, Any]:
    """The full JSON form, read-only fields included (for HTTP, snapshots and exports)."""
    return {
        "id": contact.id,
        "name": contact.name,
        "emails": list(contact.emails),
        "phones": list(contact.phones),
        "company": contact.company,
        "title": contact.title,
        "address": contact.address,
        "birthday": contact.birthday,
        "notes": contact.notes,
        "labels": list(contact.labels),
        "created_at": format_timestamp(contact.created_at),
        "updated_at": format_timestamp(contact.updated_at),
        "version": contact.version,
    }


def contact_from_dict(data: Mapping[str, Any]) -> Contact:
    """Inverse of :func:`contact_to_dict`; trusts its input (it comes from our own snapshots)."""
    return Contact(
        id=data["id"],
        name=data["name"],
        emails=tuple(data.get("emails") or ()),
        phones=tuple(data.get("phones") or ()),
        company=data.get("company"),
        title=data.get("title"),
        address=data.get("address"),
        birthday=data.get("birthday"),
        notes=data.get("notes"),
        labels=tuple(data.get("labels") or ()),
        created_at=parse_timestamp(data["created_at"]),
        updated_at=parse_timestamp(data["updated_at"]),
        version=int(data["version"]),
    )


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds, so a replay reproduces the exact instant.

    A command formats its instant several times (the event's payload, the contact's
    ``created_at`` and ``updated_at`` in the reply), each time a new instant: the last one
    is remembered by identity. An instant in UTC with a fraction of a second is written by
    orjson, whose RFC 3339 text is then the same as ``isoformat``'s (1 us instead of 3.6 on
    the machine of docs/performance.md's last round; a test compares them on generated
    instants); one on the whole second (orjson would leave out ``.000000``) or in another
    zone goes through ``isoformat``, the latter cached (a replayed import chunk shares one
    instant)."""
    global _last_formatted
    last = _last_formatted
    if last[0] is value:
        return last[1]
    if value.tzinfo is UTC and value.microsecond:
        text = orjson.dumps(value)[1:-1].decode()
    else:
        text = _isoformat_in_utc(value)
    _last_formatted = (value, text)
    return text


_last_formatted: tuple[datetime | None, str] = (None, "")
"""The instant :func:`format_timestamp` formatted last, and its text (one tuple, replaced
whole, so a reader never pairs one instant with another's text)."""


@lru_cache(maxsize=4096)
def _isoformat_in_utc(value: datetime) -> str:
    return require_aware(value).astimezone(UTC).isoformat(timespec="microseconds")


@lru_cache(maxsize=4096)
def parse_timestamp(value: str) -> datetime:
    return require_aware(datetime.fromisoformat(value))


def require_aware(value: datetime) -> datetime:
    """Naive datetimes are ambiguous across hosts; every instant in the domain carries a zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"timestamp {value!r} has no timezone")
    return value
