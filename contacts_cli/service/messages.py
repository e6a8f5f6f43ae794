"""The messages a user actor understands, and its reply to a refused command.

An update and a removal are the domain's own commands (``UpdateContact``,
``RemoveContact``); the rest are defined here because they carry what only the service knows
(idempotency keys, paging, how an import is streamed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contacts_cli.backends.errors import BackendError
from contacts_cli.domain import ImportRow, RemoveContact, UpdateContact
from contacts_cli.domain.decide import DuplicatePolicy


@dataclass(frozen=True, slots=True)
class Get:
    contact_id: str


@dataclass(frozen=True, slots=True)
class ListContacts:
    limit: int = 50
    cursor: str | None = None
    q: str | None = None


@dataclass(frozen=True, slots=True)
class Create:
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


@dataclass(frozen=True, slots=True)
class Count:
    """How many contacts the user has (for stats)."""


Message = Get | ListContacts | Create | UpdateContact | RemoveContact | Import | Count
"""What a user actor understands."""


@dataclass(frozen=True, slots=True)
class Failed:
    """The reply to a command that was refused; the backend raises ``error``."""

    error: BackendError
