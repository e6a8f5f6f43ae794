"""The messages a user actor understands, and its reply to a refused command.

An update and a removal are the domain's own commands (``UpdateContact``,
``RemoveContact``); the rest are defined here because they carry what only the service knows
(idempotency keys, paging, how an import is streamed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from contacts_cli.backends.errors import BackendError
from contacts_cli.domain import Card, Contact, ImportRow, RemoveContact, UpdateContact
from contacts_cli.domain.decide import DuplicatePolicy


class Get(msgspec.Struct, frozen=True):
    contact_id: str


class ListContacts(msgspec.Struct, frozen=True):
    limit: int = 50
    cursor: str | None = None
    q: str | None = None


class Create(msgspec.Struct, frozen=True):
    data: Mapping[str, Any]
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Import:
    """One chunk of rows: decided together and persisted with one ``persist_all``.

    ``more``: the sender has the next chunk of the same import ready, so a snapshot falling
    due now waits for the last chunk (see :class:`~contacts_cli.service.actor.UserActor`)."""

    rows: Sequence[ImportRow]
    policy: DuplicatePolicy = "skip"
    dry_run: bool = False
    idempotency_key: str | None = None
    more: bool = False


class Count(msgspec.Struct, frozen=True):
    """How many contacts the user has (for stats)."""


@dataclass(frozen=True, slots=True)
class Cards:
    """The live contacts with these ids (every one for ``None``), as an address book serves
    them; the reply is a :class:`CardsReply`."""

    ids: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class CardsReply:
    """Contacts by id (creation order for all of them; a removed or unknown id is absent)
    and the sequence number of the last event folded into them: the address book's sync
    token at the moment of the answer."""

    sequence_nr: int
    contacts: dict[str, Contact]


@dataclass(frozen=True, slots=True)
class PutCard:
    """Store what an address-book client PUT at ``contact_id``: create the contact (with that
    id) or replace its fields and card, in one step so no other command comes in between.

    ``expected_version``: the contact must exist at that version (``If-Match``);
    ``create_only``: it must not exist (``If-None-Match: *``). The reply is a
    :class:`PutCardReply`."""

    contact_id: str
    fields: Mapping[str, Any]
    card: Card
    expected_version: int | None = None
    create_only: bool = False


@dataclass(frozen=True, slots=True)
class PutCardReply:
    contact: Contact
    created: bool


Message = (
    Get | ListContacts | Create | UpdateContact | RemoveContact | Import | Count | Cards | PutCard
)
"""What a user actor understands."""


@dataclass(frozen=True, slots=True)
class Failed:
    """The reply to a command that was refused; the backend raises ``error``."""

    error: BackendError
