"""Reads of a user's past, straight from the journal: a contact's history, the state as of.

They stream the user's journal with the engine's ``replay`` rather than asking the user's
actor, so a long replay never blocks that user's mailbox (and they work for removed contacts
and for users whose actor is not running).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from contacts_cli.backends.base import ContactList, EventList
from contacts_cli.backends.errors import Invalid
from contacts_cli.backends.translate import backend_error
from contacts_cli.domain import (
    ContactNotFound,
    ContactsState,
    contact_history,
    contact_to_dict,
    evolve,
)
from contacts_cli.domain.model import format_timestamp
from contacts_cli.service.envelope import decode_journaled
from contacts_cli.service.ids import persistence_id
from persistence.engine import Engine, StoredEvent
from persistence.errors import PersistenceError


async def history(engine: Engine, user: str, contact_id: str) -> EventList:
    """The contact's events, oldest first, read from the journal (also after removal)."""
    stored = []
    async for raw in _journal(engine, user):
        if isinstance(raw.payload, dict) and raw.payload.get("id") == contact_id:
            event = decode_journaled(raw.type, raw.version, raw.payload).event
            stored.append((event, raw))
    try:
        entries = contact_history(contact_id, [(event.at, event) for event, _ in stored])
    except ContactNotFound as error:
        raise backend_error(error) from None
    return [
        {
            "sequence_nr": raw.sequence_nr,
            "type": entry.type,
            "timestamp": format_timestamp(entry.at),
            "recorded_at": format_timestamp(raw.timestamp),
            "version": entry.version,
            "changes": entry.changes,
        }
        for entry, (_, raw) in zip(entries, stored, strict=True)
    ]


async def as_of(engine: Engine, user: str, when: datetime) -> ContactList:
    """The user's contacts as they were at ``when``: the journal replayed up to it."""
    if when.utcoffset() is None:
        raise Invalid([("as_of", "must carry a time zone offset")])
    state = ContactsState()
    async for raw in _journal(engine, user):
        event = decode_journaled(raw.type, raw.version, raw.payload).event
        if event.at <= when:
            evolve(state, event)
    contacts = (state.get(contact_id) for _, contact_id in state.ordered_keys())
    return [contact_to_dict(contact) for contact in contacts if contact is not None]


async def _journal(engine: Engine, user: str) -> AsyncIterator[StoredEvent]:
    pid = persistence_id(user)
    try:
        async for event in engine.replay(pid):
            yield event
    except (PersistenceError, OSError) as exc:
        raise backend_error(exc) from exc

