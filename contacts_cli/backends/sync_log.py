"""The journal as a sync log: which contacts changed after a sync token.

A user's sequence number is an RFC 6578 sync token: "what changed since token N" is "which
contacts the events after N touched". The events are streamed from the journal (as
:mod:`contacts_cli.backends.past` reads history), only their contact ids are looked at, and
the user's actor is asked for those contacts as they are now. A contact an event touched that
is no longer live is reported as removed: the journal is its tombstone.

A token is answerable while the journal still holds every event after it: one beyond the last
event, or one followed by deleted events (``Engine.delete_events_to``) raises
:class:`~contacts_cli.backends.errors.SyncTokenInvalid`, and the client syncs from scratch.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from contacts_cli.backends.errors import SyncTokenInvalid
from contacts_cli.backends.translate import backend_error
from contacts_cli.domain import Contact
from contacts_cli.service.ids import persistence_id
from contacts_cli.service.messages import CardsReply
from persistence.engine import Engine
from persistence.errors import PersistenceError

AskCards = Callable[[tuple[str, ...] | None], Awaitable[CardsReply]]
"""Asks the user's actor for contacts by id (all for ``None``): ``LocalBackend.cards``."""


@dataclass(frozen=True, slots=True)
class Changes:
    """The answer to "what changed after token N": the token to ask with next time, the live
    contacts touched (as they are now), the ids removed, and whether the answer stopped at
    the caller's limit (then ``sequence_nr`` lets the next request go on from there)."""

    sequence_nr: int
    changed: list[Contact]
    removed: list[str]
    truncated: bool = False


async def changes_since(
    engine: Engine, user: str, after: int | None, limit: int | None, ask: AskCards
) -> Changes:
    """The contacts changed after sequence number ``after`` (``None``: the first sync, every
    live contact), at most ``limit`` of them (``None``: all)."""
    position = (await ask(())).sequence_nr
    if after is not None and not 0 <= after <= position:
        raise SyncTokenInvalid(
            f"sync token {after} is not a position of this address book (it is at {position})"
        )
    if after is None and limit is None:
        everything = await ask(None)
        return Changes(everything.sequence_nr, list(everything.contacts.values()), [])
    start = after or 0
    touched, covered, truncated = await _touched(engine, user, start, position, limit)
    if covered < position and not truncated:
        raise SyncTokenInvalid(
            f"sync token {start} is too old: the events after it are no longer in the journal"
        )
    now = await ask(tuple(touched))
    changed = [now.contacts[i] for i in touched if i in now.contacts]
    removed = [] if after is None else [i for i in touched if i not in now.contacts]
    return Changes(covered, changed, removed, truncated)


async def _touched(
    engine: Engine, user: str, start: int, position: int, limit: int | None
) -> tuple[list[str], int, bool]:
    """The distinct contact ids of the events ``start+1..position`` in journal order, the last
    sequence number they cover, and whether ``limit`` ids stopped the walk early. The events
    must follow one another from ``start + 1``: a gap means deleted events."""
    ids: dict[str, None] = {}
    covered = start
    if start == position:
        return [], covered, False
    try:
        async for raw in engine.replay(persistence_id(user), start + 1, position):
            if raw.sequence_nr != covered + 1:
                raise SyncTokenInvalid(
                    f"sync token {start} is too old: the journal resumes at {raw.sequence_nr}"
                )
            contact_id = raw.payload.get("id") if isinstance(raw.payload, dict) else None
            if not isinstance(contact_id, str):
                raise backend_error(ValueError(f"event {raw.sequence_nr} names no contact"))
            if contact_id not in ids:
                if limit is not None and len(ids) >= limit:
                    return list(ids), covered, True
                ids[contact_id] = None
            covered = raw.sequence_nr
    except (PersistenceError, OSError) as exc:
        raise backend_error(exc) from exc
    return list(ids), covered, False
