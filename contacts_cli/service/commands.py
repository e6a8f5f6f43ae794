"""The command side of one user: decide, persist, reply; independent of the actor machinery.

``decide`` (the domain) turns a command into events; :class:`UserCommands` persists them
(one ``persist`` call per command or import chunk) and only then replies, from the state they
were folded into. Ids and timestamps are made here, once, and stored in the events, so a
replay reproduces the state exactly. A refused command is replied to with :class:`Failed`,
its error translated to the backend's vocabulary (by :mod:`contacts_cli.backends.translate`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from contacts_cli.backends.errors import BackendError, Conflict, NotFound
from contacts_cli.backends.translate import backend_error
from contacts_cli.domain import (
    EDITABLE_FIELDS,
    CreateContact,
    DomainError,
    ImportContacts,
    RemoveContact,
    RowOutcome,
    UpdateContact,
    contact_to_dict,
    decide,
    get_contact,
    list_contacts,
    plan_import,
    search_steps,
)
from contacts_cli.service.envelope import Journaled
from contacts_cli.service.idempotency import (
    fingerprint,
    replayed_create,
    row_key,
    split_replayed,
)
from contacts_cli.service.ids import new_contact_id
from contacts_cli.service.messages import (
    Cards,
    CardsReply,
    Count,
    Create,
    Failed,
    Get,
    Import,
    ListContacts,
    Message,
    PutCard,
    PutCardReply,
)
from contacts_cli.service.slices import run_in_slices
from contacts_cli.service.user_state import UserState

Persist = Callable[[list[Journaled]], Awaitable[None]]
"""Makes the events durable and folds them into the state; returns once both are done."""

_OUTCOMES = {
    "created": "created",
    "updated": "updated",
    "unchanged": "skipped",
    "skipped-duplicate": "skipped",
    "rejected": "rejected",
}


def outcome_json(outcome: RowOutcome) -> dict[str, Any]:
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
    return result


class UserCommands:
    """The command side of one user, independent of the actor machinery that calls it.

    ``handle`` decides, calls ``persist`` with the events (which must return only once they
    are durable and folded into ``state``), and returns the reply. ``sequence_nr`` is that of
    the last event folded into ``state`` (an address book's sync token, see :class:`Cards`).
    """

    def __init__(self, user_id: str, *, region: str | None = None) -> None:
        self.user_id = user_id
        self.region = region

    async def handle(
        self, state: UserState, message: Message, persist: Persist, sequence_nr: int = 0
    ) -> Any:
        try:
            return await self._handle(state, message, persist, sequence_nr)
        except (DomainError, BackendError) as error:
            return Failed(backend_error(error))

    async def _handle(
        self, state: UserState, message: Message, persist: Persist, sequence_nr: int
    ) -> Any:
        contacts = state.contacts
        if isinstance(message, Cards):
            if message.ids is None:
                return CardsReply(sequence_nr, {c.id: c for c in contacts})
            found = {i: c for i in message.ids if (c := contacts.get(i)) is not None}
            return CardsReply(sequence_nr, found)
        if isinstance(message, Get):
            return contact_to_dict(get_contact(contacts, message.contact_id))
        if isinstance(message, ListContacts):
            page = (
                await run_in_slices(
                    search_steps(contacts, message.q, message.limit, message.cursor)
                )
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
        if isinstance(message, PutCard):
            return await self._put_card(state, message, now, persist)
        raise TypeError(f"a user actor does not understand {message!r}")

    async def _create(
        self, state: UserState, message: Create, now: datetime, persist: Persist
    ) -> dict[str, Any]:
        key = message.idempotency_key
        digest = None
        if key is not None:
            digest = fingerprint(message.data)
            if (replayed := replayed_create(state, key, digest)) is not None:
                return replayed
        events = decide(
            state.contacts, CreateContact(message.data), now, new_contact_id, region=self.region
        )
        await persist([Journaled(e, key, digest) for e in events])
        return contact_to_dict(get_contact(state.contacts, events[0].contact_id))

    async def _put_card(
        self, state: UserState, message: PutCard, now: datetime, persist: Persist
    ) -> PutCardReply:
        contact_id = message.contact_id
        current = state.contacts.get(contact_id)
        if current is not None and message.create_only:
            raise Conflict(f"contact {contact_id!r} already exists (If-None-Match: *)")
        if current is None and message.expected_version is not None:
            raise NotFound(f"contact {contact_id!r} not found (If-Match names a version of it)")
        if current is None:
            command: CreateContact | UpdateContact = CreateContact(
                message.fields, message.card, contact_id
            )
        else:  # a PUT replaces the whole card: a field it no longer has is cleared
            patch = {name: message.fields.get(name) for name in EDITABLE_FIELDS}
            command = UpdateContact(contact_id, patch, message.expected_version, message.card)
        events = decide(state.contacts, command, now, new_contact_id, region=self.region)
        await persist([Journaled(e) for e in events])
        return PutCardReply(get_contact(state.contacts, contact_id), current is None)

    async def _import(
        self, state: UserState, message: Import, now: datetime, persist: Persist
    ) -> list[dict[str, Any]]:
        key = message.idempotency_key
        done, fresh = split_replayed(state, key, message.rows)
        plan = plan_import(
            state.contacts, ImportContacts(fresh, message.policy), now, new_contact_id,
            region=self.region,
        )
        writes = iter(plan.events)
        journaled: list[Journaled] = []
        for outcome in plan.outcomes:
            report = outcome_json(outcome)
            if outcome.status in ("created", "updated"):
                journaled.append(Journaled(next(writes), row_key(key, outcome.ref)))
                if message.dry_run and outcome.status == "created":
                    report["id"] = None
            done[outcome.ref] = report
        if not message.dry_run:
            await persist(journaled)
        return [done[row.ref] for row in message.rows]
