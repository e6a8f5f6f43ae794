"""Reads of a user's past, straight from the journal: a contact's history, the state as of.

They read the user's journal with the engine's ``replay``, :data:`PAGE_SIZE` events a page,
rather than asking the user's actor, so a long read never blocks that user's mailbox (and
they work for removed contacts and for users whose actor is not running); and they give the
event loop back every few milliseconds (:class:`~contacts_cli.service.slices.Slicer`), so
they never hold up the other users' requests either.

**As of**: the state after the last event decided at or before ``when``. A user's actor
decides one command at a time and stamps its events with the clock, so their times rise
along the journal and the events at or before ``when`` are a prefix of it: its end is found
by bisecting sequence numbers (some 17 single-event reads for 100,000 events), and the state
is the latest snapshot within that prefix plus the events after the snapshot (not the whole
journal from the start). Snapshots are chosen by the sequence number they were taken at, not
by the time they were stored: a snapshot at ``n`` holds exactly events ``1..n``. Should the
clock ever step back between two events, the prefix ends at the first event after ``when``,
a consistent state, where folding every event stamped before ``when`` could fold an update
without its creation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from actors.snapshots import unwrap_snapshot
from contacts_cli.backends.base import ContactList, EventList
from contacts_cli.backends.errors import Invalid
from contacts_cli.backends.translate import backend_error
from contacts_cli.domain import (
    ContactNotFound,
    ContactsState,
    contact_history,
    contact_to_dict,
    evolve,
    sorted_by_name,
)
from contacts_cli.domain.model import format_timestamp
from contacts_cli.service.envelope import decode_journaled
from contacts_cli.service.ids import persistence_id
from contacts_cli.service.slices import Slicer, run_in_slices
from contacts_cli.service.snapshot_codec import decode_snapshot
from persistence.engine import MAX_SEQUENCE_NR, Engine, StoredEvent
from persistence.errors import PersistenceError

PAGE_SIZE = 500
"""Events read from the journal per ``replay`` call."""
CONTACTS_PER_PAGE = 500
"""Contacts per page of :func:`as_of_pages` (a streamed response sends one page a chunk)."""


async def history(engine: Engine, user: str, contact_id: str) -> EventList:
    """The contact's events, oldest first, read from the journal (also after removal)."""
    stored = []
    async for raw in _journal(engine, persistence_id(user), 1, MAX_SEQUENCE_NR):
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
    """The user's contacts as they were at ``when``, in name order, as one list."""
    return [item async for page in as_of_pages(engine, user, when) for item in page]


async def as_of_pages(
    engine: Engine, user: str, when: datetime, per_page: int | None = None
) -> AsyncIterator[ContactList]:
    """The user's contacts as they were at ``when``, in name order, ``per_page`` at a time
    (:data:`CONTACTS_PER_PAGE` by default).

    The state is rebuilt before the first page, so an error (a bad time, the database) is
    raised by the first ``anext``, before a caller has sent anything."""
    if when.utcoffset() is None:
        raise Invalid([("as_of", "must carry a time zone offset")])
    state = await state_as_of(engine, user, when)
    ordered = await run_in_slices(sorted_by_name(state))
    del state
    slicer = Slicer()
    size = per_page or CONTACTS_PER_PAGE
    for start in range(0, len(ordered), size):
        yield [contact_to_dict(contact) for contact in ordered[start:start + size]]
        await slicer.tick()


async def state_as_of(engine: Engine, user: str, when: datetime) -> ContactsState:
    """The contacts after the last event at or before ``when``: the latest snapshot at or
    before that event, then the events after the snapshot up to it."""
    pid = persistence_id(user)
    try:
        end = await last_event_at_or_before(engine, pid, when)
        snapshot = await engine.load_snapshot(pid, end) if end else None
        if snapshot is None:
            state, start = ContactsState(), 1
        else:
            payload, version = unwrap_snapshot(snapshot.payload, f"snapshot of {pid!r}")
            state = decode_snapshot(payload, version, pid).contacts
            start = snapshot.sequence_nr + 1
    except (PersistenceError, OSError) as exc:
        raise backend_error(exc) from exc
    async for raw in _journal(engine, pid, start, end):
        evolve(state, decode_journaled(raw.type, raw.version, raw.payload).event)
    return state


async def last_event_at_or_before(engine: Engine, pid: str, when: datetime) -> int:
    """The sequence number of the last event of ``pid`` decided at or before ``when`` (0:
    none), by bisection: event times rise along the journal (see the module's docstring)."""
    low, high = 0, await engine.highest_sequence_nr(pid)
    while low < high:  # invariant: the answer is in low..high; low is 0 or such an event
        middle = (low + high + 1) // 2
        found = await _first_event(engine, pid, middle, high)
        if found is not None and _decided_at(found) <= when:
            low = found.sequence_nr
        else:
            high = middle - 1
    return low


async def _first_event(engine: Engine, pid: str, low: int, high: int) -> StoredEvent | None:
    """The first event numbered ``low..high`` (some may have been deleted), or None."""
    async for event in engine.replay(pid, low, high, max_count=1):
        return event
    return None


def _decided_at(raw: StoredEvent) -> datetime:
    return decode_journaled(raw.type, raw.version, raw.payload).event.at


async def _journal(engine: Engine, pid: str, first: int, last: int) -> AsyncIterator[StoredEvent]:
    """The events numbered ``first..last``, a page per ``replay`` call, with the event loop
    given back every few milliseconds (also while the caller works on each event)."""
    slicer = Slicer()
    start = first
    try:
        while start <= last:
            count = 0
            async for event in engine.replay(pid, start, last, max_count=PAGE_SIZE):
                count += 1
                start = event.sequence_nr + 1
                yield event
                await slicer.tick()
            if count < PAGE_SIZE:
                return
    except (PersistenceError, OSError) as exc:
        raise backend_error(exc) from exc
