"""The interfaces the CLI and the HTTP app talk to, in-process or over HTTP.

* :class:`ContactsBackend`: what the CLI calls. ``LocalBackend``
  (contacts_cli/backends/local.py) drives the actor system in this process; ``HttpBackend``
  (contacts_cli/backends/http.py) calls a running ``contacts serve``. Both return the same
  plain JSON-ready dicts, so the CLI prints the same output in either mode.
* :class:`ServiceBackend`: what the HTTP app serves from, a :class:`ContactsBackend` that also
  answers readiness probes, exposes the runtime's counters and streams an import's chunks.
  Only ``LocalBackend`` is one (a service in front of another service is not offered).

Each implementation module states its conformance with a typed assignment that mypy checks.
The errors they raise are in :mod:`contacts_cli.backends.errors`, re-exported here as part
of the interface.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from contacts_cli.backends.errors import (
    BackendError,
    Conflict,
    Invalid,
    NotFound,
    TimedOut,
    Unavailable,
)

if TYPE_CHECKING:  # the CLI's client mode imports this module and must stay light
    from contacts_cli.backends.forwarding import Relayed
    from contacts_cli.backends.sync_log import Changes
    from contacts_cli.service.messages import CardsReply, PutCard, PutCardReply

__all__ = [
    "BackendError",
    "Conflict",
    "ContactJson",
    "ContactList",
    "ContactsBackend",
    "DuplicatePolicy",
    "EventList",
    "Invalid",
    "JsonObject",
    "NotFound",
    "NumberedRow",
    "Outcome",
    "OutcomeList",
    "RowError",
    "RowList",
    "ServiceBackend",
    "TimedOut",
    "Unavailable",
]

# Aliases, so that annotations inside the protocols never say ``list``: there it would name
# the method ``list``, not the type.
JsonObject = dict[str, Any]
ContactJson = dict[str, Any]
ContactList = list[ContactJson]
EventList = list[JsonObject]
RowList = list[JsonObject]
Outcome = dict[str, Any]
"""One import row's outcome: ``{"row": n, "outcome": "created"|"updated"|"skipped"|
"rejected", "id": ..., "errors": [{"field", "message"}], "reason"?: ...}``."""
OutcomeList = list[Outcome]
DuplicatePolicy = Literal["skip", "update", "create"]


class RowError:
    """An import row that could not even be read (malformed line); reported as rejected."""

    __slots__ = ("errors", "number")

    def __init__(self, number: int, errors: list[tuple[str, str]]) -> None:
        self.number = number
        self.errors = errors


NumberedRow = tuple[int, "Mapping[str, Any] | RowError"]
"""An import row with the caller's number for it (e.g. its line in the request body)."""


class ContactsBackend(Protocol):
    """Every call the CLI makes; each raises a :class:`BackendError` subclass on failure."""

    async def create(self, user: str, data: Mapping[str, Any],
                     idempotency_key: str | None = None) -> ContactJson: ...

    async def get(self, user: str, contact_id: str) -> ContactJson: ...

    async def list(self, user: str, *, limit: int = 50, cursor: str | None = None,
                   q: str | None = None) -> JsonObject:
        """``{"items": [...], "next_cursor": str | None}``"""
        ...

    async def update(self, user: str, contact_id: str, changes: Mapping[str, Any],
                     expected_version: int | None = None) -> ContactJson: ...

    async def remove(self, user: str, contact_id: str,
                     expected_version: int | None = None) -> ContactJson: ...

    async def history(self, user: str, contact_id: str) -> EventList:
        """The contact's events, oldest first (also after its removal)."""
        ...

    async def as_of(self, user: str, when: datetime) -> ContactList:
        """The user's contacts as they were at ``when``."""
        ...

    def import_rows(self, user: str, rows: AsyncIterable[JsonObject], *,
                    policy: DuplicatePolicy = "skip", chunk_size: int = 1000,
                    dry_run: bool = False) -> AsyncIterator[Outcome]:
        """Yields one outcome per row (rows numbered from 1) once its chunk is durable."""
        ...

    async def import_chunk(self, user: str, rows: RowList, idempotency_key: str | None, *,
                           policy: DuplicatePolicy = "skip", dry_run: bool = False,
                           more: bool = False) -> OutcomeList:
        """One chunk, rows numbered 1..n, in one command: each row is journaled under
        ``<idempotency_key>#<n>``, so re-sending it with the same key creates nothing twice.
        ``more``: the next chunk of the same import follows at once (a hint: a snapshot
        falling due may wait for the last chunk)."""
        ...

    async def stats(self) -> JsonObject: ...

    async def add_account(self, name: str, password: str) -> JsonObject:
        """Create the account ``name`` (a user id) with ``password``: ``Conflict`` if it
        exists, ``Invalid`` for a bad name or password. Returns ``{"name", "created_at",
        "password_changed_at"}``, never the hash."""
        ...

    async def set_password(self, name: str, password: str) -> JsonObject:
        """Replace the account's password, effective for the next request (``NotFound`` if
        there is no account)."""
        ...

    async def remove_account(self, name: str) -> JsonObject:
        """Delete the account (``NotFound`` if none); the user's contacts stay."""
        ...

    async def close(self) -> None: ...


class ServiceBackend(ContactsBackend, Protocol):
    """What the HTTP app needs of the backend it serves, beyond :class:`ContactsBackend`."""

    async def ping(self, within: float = 3.0) -> None:
        """Raise :class:`Unavailable` unless the database answers within ``within`` s."""
        ...

    async def verify_password(self, name: str, password: str) -> bool:
        """Whether ``password`` is the password of the account ``name`` (False when there is
        no such account, after as long as a wrong password takes)."""
        ...

    def runtime_metrics(self) -> dict[str, float]:
        """The actor runtime's counters as plain numbers (for /metrics)."""
        ...

    async def cluster_figures(self) -> JsonObject | None:
        """This instance's view of the cluster (None when it is not in one, or the database
        does not answer): instances live, users hosted here, takeovers in the last hour..."""
        ...

    def as_of_pages(self, user: str, when: datetime) -> AsyncIterator[ContactList]:
        """:meth:`as_of` a page at a time, for a response streamed rather than built whole;
        an error is raised by the first ``anext``, before any page."""
        ...

    def import_numbered_chunks(
        self, user: str, rows: AsyncIterable[NumberedRow], *,
        policy: DuplicatePolicy = "skip", chunk_size: int = 1000, dry_run: bool = False,
        idempotency_key: str | None = None, more: bool = False,
    ) -> AsyncIterator[OutcomeList]:
        """Rows with the caller's numbers, one list of outcomes per chunk once it is durable;
        a :class:`RowError` (or a row that is not an object) is reported as rejected."""
        ...

    # -- what an address book (CardDAV) serves from ---------------------------------------

    async def cards(self, user: str, ids: tuple[str, ...] | None = None) -> CardsReply:
        """The live contacts with ``ids`` (all for ``None``) and the user's sequence number."""
        ...

    async def host_of(self, user: str) -> str | None:
        """``None`` when this instance serves ``user`` (activating it here if need be), else
        the address of the instance that hosts the user's actor."""
        ...

    async def relay(self, user: str, address: str, method: str, target: str,
                    headers: Mapping[str, str], body: bytes) -> Relayed:
        """Send a whole HTTP request for ``user`` to the instance at ``address`` and return
        its answer (CardDAV is served whole by the instance that hosts the user)."""
        ...

    async def put_card(self, user: str, put: PutCard) -> PutCardReply:
        """Create or replace the contact an address-book client PUT (see ``PutCard``)."""
        ...

    async def changes_since(self, user: str, after: int | None,
                            limit: int | None = None) -> Changes:
        """The contacts changed after sequence number ``after`` (the sync log, see
        :mod:`contacts_cli.backends.sync_log`); raises ``SyncTokenInvalid``."""
        ...
