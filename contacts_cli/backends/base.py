"""The one interface the CLI and the HTTP routes talk to, in-process or over HTTP.

Both implementations return the same plain JSON-ready dicts, so the CLI prints the same
output in either mode. ``LocalBackend`` (contacts_cli/backends/local.py) drives the actor system;
``HttpBackend`` (contacts_cli/backends/http.py) calls a running ``contacts serve``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping
from datetime import datetime
from typing import Any, Literal, Protocol

ContactJson = dict[str, Any]
DuplicatePolicy = Literal["skip", "update", "create"]


class BackendError(Exception):
    """Base of the errors every backend raises; each maps to one CLI exit code and HTTP status."""

    exit_code = 1
    http_status = 500


class NotFound(BackendError):
    exit_code, http_status = 3, 404


class Conflict(BackendError):
    """A stale expected version (HTTP 412 when it came from If-Match, 409 otherwise)."""

    exit_code, http_status = 4, 412


class Invalid(BackendError):
    """Validation failed; ``errors`` lists (field, message) pairs."""

    exit_code, http_status = 2, 422

    def __init__(self, errors: list[tuple[str, str]]):
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = errors


class Unavailable(BackendError):
    """The database (or the service) cannot be reached."""

    exit_code, http_status = 5, 503


class TimedOut(BackendError):
    exit_code, http_status = 1, 504


class ContactsBackend(Protocol):
    async def create(self, user: str, data: Mapping[str, Any],
                     idempotency_key: str | None = None) -> ContactJson: ...
    async def get(self, user: str, contact_id: str) -> ContactJson: ...
    async def list(self, user: str, *, limit: int = 50, cursor: str | None = None,
                   q: str | None = None) -> dict[str, Any]:
        """{"items": [...], "next_cursor": str | None}"""
    async def update(self, user: str, contact_id: str, changes: Mapping[str, Any],
                     expected_version: int | None = None) -> ContactJson: ...
    async def remove(self, user: str, contact_id: str,
                     expected_version: int | None = None) -> ContactJson: ...
    async def history(self, user: str, contact_id: str) -> list[dict[str, Any]]: ...
    async def as_of(self, user: str, when: datetime) -> list[ContactJson]: ...
    async def import_rows(self, user: str, rows: AsyncIterable[dict[str, Any]], *,
                          policy: DuplicatePolicy = "skip", chunk_size: int = 1000,
                          dry_run: bool = False) -> AsyncIterable[dict[str, Any]]:
        """Yields one outcome per row as soon as its chunk is durable:
        {"row": n, "outcome": "created"|"updated"|"skipped"|"rejected", "id": ...,
        "errors": [...]}"""
    async def stats(self) -> dict[str, Any]: ...
    async def close(self) -> None: ...
