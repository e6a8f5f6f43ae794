"""What the journal holds for a user: a domain event plus the idempotency key that caused it.

The key travels in the journal with the events it produced, so a retried request is
recognised after a crash and restart as well as before. The domain owns the event payloads
and their versions (and upcasts old ones); this module adds the key and the request's
fingerprint to the payload and takes them off again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

import msgspec

from actors.upcasting import EncodedEvent, EventCodec
from contacts_cli.domain import (
    ContactCreated,
    ContactRemoved,
    ContactUpdated,
    DomainError,
    Event,
    event_from_payload,
)
from contacts_cli.domain.events import EVENT_VERSIONS, event_to_encodable
from contacts_cli.domain.model import EDITABLE_FIELDS
from persistence.engine import Json
from persistence.errors import JournalIntegrityError


class Journaled(msgspec.Struct, frozen=True):
    """A domain event as journaled: plus the idempotency key of the request that caused it.

    A frozen ``msgspec.Struct``: one is built per event persisted and per event replayed,
    at a seventh of a frozen dataclass's cost."""

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
