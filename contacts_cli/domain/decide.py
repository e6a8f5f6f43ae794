"""The functional core: ``decide`` turns a command into events, ``evolve`` applies one.

``decide(state, command, now, new_id)`` reads the state, validates, and either raises a
typed domain error or returns the events to persist; it never changes the state.
``evolve(state, event)`` applies one persisted (or replayed) event; it is deterministic and
never creates ids or timestamps: those come from the event, so a replay reproduces the
state exactly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias

import msgspec

from contacts_cli.domain.card import Card
from contacts_cli.domain.errors import (
    ContactExists,
    FieldError,
    NewIdCollision,
    ValidationError,
    VersionConflict,
)
from contacts_cli.domain.events import ContactCreated, ContactRemoved, ContactUpdated, Event
from contacts_cli.domain.model import (
    CARD_FIELD,
    LIST_FIELDS,
    Contact,
    new_contact,
    require_aware,
)
from contacts_cli.domain.state import ContactsState, require_contact
from contacts_cli.domain.validation import (
    MAX_ITEMS,
    default_region,
    email_key,
    validate_card,
    validate_contact_id,
    validate_new,
    validate_patch,
)

NewId: TypeAlias = Callable[[], str]
DuplicatePolicy: TypeAlias = Literal["skip", "update", "create"]
DUPLICATE_POLICIES: tuple[DuplicatePolicy, ...] = ("skip", "update", "create")
RowStatus: TypeAlias = Literal["created", "updated", "unchanged", "skipped-duplicate", "rejected"]


class CreateContact(msgspec.Struct, frozen=True):
    """A new contact; an address-book client also gives the ``card`` it stores and names
    the card (``contact_id``), which must then be free."""

    fields: Mapping[str, Any]
    card: Card | None = None
    contact_id: str | None = None


class UpdateContact(msgspec.Struct, frozen=True):
    """A merge: only the given fields change; ``None`` clears one (``name`` cannot be).
    A ``card`` replaces the stored vCard (``None``: it stays as it is)."""

    contact_id: str
    patch: Mapping[str, Any]
    expected_version: int | None = None
    card: Card | None = None


class RemoveContact(msgspec.Struct, frozen=True):
    contact_id: str
    expected_version: int | None = None


class ImportRow(msgspec.Struct, frozen=True):
    """One row to import; ``ref`` is the caller's reference (e.g. its line number).

    This and :class:`RowOutcome`, one per row of an import, are frozen ``msgspec.Struct``
    values: several times cheaper to build than frozen dataclasses."""

    ref: int
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ImportContacts:
    rows: Sequence[ImportRow]
    policy: DuplicatePolicy = "skip"


Command: TypeAlias = CreateContact | UpdateContact | RemoveContact | ImportContacts


class RowOutcome(msgspec.Struct, frozen=True):
    """What importing one row did (or would do, before the events are persisted)."""

    ref: int
    status: RowStatus
    contact_id: str | None = None
    errors: tuple[FieldError, ...] = ()
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for import reports (HTTP body, CLI ``--json``)."""
        return {
            "ref": self.ref,
            "status": self.status,
            "contact_id": self.contact_id,
            "reason": self.reason,
            "errors": [{"field": e.field, "message": e.message} for e in self.errors],
        }


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """The events to ``persist_all`` for one chunk, and the per-row report."""

    events: list[Event] = field(default_factory=list)
    outcomes: list[RowOutcome] = field(default_factory=list)


def decide(
    state: ContactsState,
    command: Command,
    now: datetime,
    new_id: NewId,
    *,
    region: str | None = None,
) -> list[Event]:
    """Validate ``command`` against ``state`` and return the events it produces.

    Raises ValidationError, ContactNotFound or VersionConflict. An update that changes
    nothing returns no events (and does not bump the version).
    """
    require_aware(now)
    if isinstance(command, CreateContact):
        fields = validate_new(command.fields, region=region)
        if command.card is not None:
            fields[CARD_FIELD] = validate_card(command.card)
        if command.contact_id is None:
            contact_id = _fresh_id(state, new_id, ())
        else:
            contact_id = validate_contact_id(command.contact_id)
            if contact_id in state:
                raise ContactExists(contact_id)
        return [ContactCreated(contact_id, fields, now)]
    if isinstance(command, UpdateContact):
        contact = _checked(state, command.contact_id, command.expected_version)
        changes = _diff(contact, validate_patch(command.patch, region=region))
        if command.card is not None and validate_card(command.card) != contact.card:
            changes[CARD_FIELD] = command.card
        return [ContactUpdated(contact.id, changes, now)] if changes else []
    if isinstance(command, RemoveContact):
        contact = _checked(state, command.contact_id, command.expected_version)
        return [ContactRemoved(contact.id, now)]
    if isinstance(command, ImportContacts):
        return plan_import(state, command, now, new_id, region=region).events
    raise TypeError(f"not a contacts command: {command!r}")


def evolve(state: ContactsState, event: Event) -> ContactsState:
    """Apply one event to ``state`` (in place) and return it.

    An event that does not fit the state (update of an unknown id, duplicate create) means
    a corrupt or misordered journal; it raises ``ValueError`` rather than guessing.
    """
    if isinstance(event, ContactCreated):
        state.add(new_contact(event.contact_id, event.fields, event.at))
    elif isinstance(event, ContactUpdated):
        current = state.get(event.contact_id)
        if current is None:
            raise ValueError(f"ContactUpdated for unknown contact {event.contact_id!r}")
        state.put(current.with_changes(event.changes, event.at))
    elif isinstance(event, ContactRemoved):
        if state.discard(event.contact_id) is None:
            raise ValueError(f"ContactRemoved for unknown contact {event.contact_id!r}")
    else:
        raise TypeError(f"not a contacts event: {event!r}")
    return state


def replay(events: Iterable[Event], state: ContactsState | None = None) -> ContactsState:
    """Fold events into ``state`` (a fresh one by default)."""
    result = ContactsState() if state is None else state
    for event in events:
        evolve(result, event)
    return result


def plan_import(
    state: ContactsState,
    command: ImportContacts,
    now: datetime,
    new_id: NewId,
    *,
    region: str | None = None,
) -> ImportPlan:
    """Decide a whole chunk of rows at once: the events for one ``persist_all`` + a report.

    Duplicates are keyed on email (case-insensitive), against the state *and* the rows
    before in the same chunk. ``skip`` reports the row, ``update`` merges it into the
    existing contact (given text fields replace, lists are unioned), ``create`` ignores
    duplicates. A rejected row produces no events and does not stop the others.
    """
    require_aware(now)
    if command.policy not in DUPLICATE_POLICIES:
        raise ValidationError.single(
            "policy", f"must be one of {', '.join(DUPLICATE_POLICIES)}, not {command.policy!r}"
        )
    if region is None:
        # Once per chunk, not per phone number (reading the environment is not free); a bad
        # setting stays None here, so each phone reports it as before.
        with contextlib.suppress(ValueError):
            region = default_region()
    plan = ImportPlan()
    created: dict[str, Mapping[str, Any]] = {}  # contacts are only built if a later row merges
    batch: dict[str, Contact] = {}
    batch_emails: dict[str, str] = {}
    for row in command.rows:
        try:
            fields = validate_new(row.data, region=region)
        except ValidationError as exc:
            plan.outcomes.append(
                RowOutcome(row.ref, "rejected", errors=exc.errors, reason=str(exc))
            )
            continue
        match = None if command.policy == "create" else _find_duplicate(state, batch_emails, fields)
        if match is None:
            contact_id = _fresh_id(state, new_id, created)
            plan.events.append(ContactCreated(contact_id, fields, now))
            created[contact_id] = fields
            _remember_emails(batch_emails, contact_id, fields["emails"])
            plan.outcomes.append(RowOutcome(row.ref, "created", contact_id))
            continue
        match_id, email = match
        if command.policy == "skip":
            plan.outcomes.append(
                RowOutcome(
                    row.ref,
                    "skipped-duplicate",
                    match_id,
                    reason=f"duplicate of contact {match_id} (email {email})",
                )
            )
            continue
        current = batch.get(match_id)
        if current is None:
            fresh = created.get(match_id)
            current = (new_contact(match_id, fresh, now) if fresh is not None
                       else require_contact(state, match_id))
        changes, errors = _merge_changes(current, fields)
        if errors:
            plan.outcomes.append(
                RowOutcome(
                    row.ref,
                    "rejected",
                    match_id,
                    errors=tuple(errors),
                    reason="; ".join(str(e) for e in errors),
                )
            )
            continue
        if not changes:
            plan.outcomes.append(RowOutcome(row.ref, "unchanged", match_id))
            continue
        plan.events.append(ContactUpdated(match_id, changes, now))
        batch[match_id] = current.with_changes(changes, now)
        _remember_emails(batch_emails, match_id, changes.get("emails", ()))
        plan.outcomes.append(RowOutcome(row.ref, "updated", match_id))
    return plan


def _checked(state: ContactsState, contact_id: str, expected: int | None) -> Contact:
    if expected is not None and (
        isinstance(expected, bool) or not isinstance(expected, int) or expected < 1
    ):
        raise ValidationError.single("expected_version", "must be a positive integer")
    contact = require_contact(state, contact_id)
    if expected is not None and expected != contact.version:
        raise VersionConflict(contact_id, expected, contact.version)
    return contact


def _diff(contact: Contact, patch: Mapping[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name, value in patch.items():
        current = getattr(contact, name)
        if name in LIST_FIELDS:
            if tuple(value or ()) != current:
                changes[name] = tuple(value or ())
        elif value != current:
            changes[name] = value
    return changes


def _merge_changes(
    contact: Contact, fields: Mapping[str, Any]
) -> tuple[dict[str, Any], list[FieldError]]:
    patch: dict[str, Any] = {}
    errors: list[FieldError] = []
    for name, value in fields.items():
        if name in LIST_FIELDS:
            merged = list(getattr(contact, name))
            seen = {item.casefold() for item in merged}
            for item in value:
                if item.casefold() not in seen:
                    seen.add(item.casefold())
                    merged.append(item)
            if len(merged) > MAX_ITEMS[name]:
                errors.append(
                    FieldError(
                        name,
                        f"merged list would have {len(merged)} items, at most {MAX_ITEMS[name]}",
                    )
                )
            patch[name] = tuple(merged)
        elif value is not None:
            patch[name] = value
    return _diff(contact, patch), errors


def _find_duplicate(
    state: ContactsState, batch_emails: Mapping[str, str], fields: Mapping[str, Any]
) -> tuple[str, str] | None:
    for email in fields["emails"]:
        match = state.first_with_email(email)
        if match is not None:
            return match, email
        batch_id = batch_emails.get(email_key(email))
        if batch_id is not None:
            return batch_id, email
    return None


def _remember_emails(batch_emails: dict[str, str], contact_id: str, emails: Iterable[str]) -> None:
    for email in emails:
        batch_emails.setdefault(email_key(email), contact_id)


_ID_ATTEMPTS = 5
"""Random ids collide about never; a source that collides this often in a row is broken."""


def _fresh_id(state: ContactsState, new_id: NewId, taken: Mapping[str, Any] | tuple[()]) -> str:
    for _ in range(_ID_ATTEMPTS):
        candidate = new_id()
        if not isinstance(candidate, str) or not candidate:
            raise TypeError(f"new_id must return a non-empty str, got {candidate!r}")
        if candidate not in state and candidate not in taken:
            return candidate
    raise NewIdCollision(_ID_ATTEMPTS)
