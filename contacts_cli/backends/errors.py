"""The errors of the backend layer: what the CLI and the HTTP routes see, in either mode.

Each class carries the CLI exit code and the HTTP status it stands for, so the CLI and the
HTTP app render every error without knowing where it came from::

    BackendError                 exit 1, HTTP 500  anything else (an internal error)
    ├── Invalid                  exit 2, HTTP 422  validation failed; ``errors`` names fields
    ├── NotFound                 exit 3, HTTP 404  no such contact
    ├── Conflict                 exit 4, HTTP 412  a stale expected version (409 without If-Match)
    ├── Unavailable              exit 5, HTTP 503  the database (or the service) is unreachable
    │   └── ServiceUnreachable                     client mode: no connection was made at all
    ├── TimedOut                 exit 1, HTTP 504  no answer in time
    └── SyncTokenInvalid         exit 2, HTTP 403  a sync token the journal cannot answer

Domain, persistence and actor errors become these in one place,
:mod:`contacts_cli.backends.translate`; client mode turns HTTP statuses back into them
(:mod:`contacts_cli.backends.http`). This module imports nothing, so client mode stays light.
"""

from __future__ import annotations


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


class ServiceUnreachable(Unavailable):
    """No connection could be made to the service, so the request was not sent at all."""

    def __init__(self, message: str, *, first_request: bool) -> None:
        super().__init__(message)
        self.first_request = first_request


class TimedOut(BackendError):
    exit_code, http_status = 1, 504


class SyncTokenInvalid(BackendError):
    """A sync token this user's journal cannot answer: unknown (another user's, beyond the last
    event) or too old (the events after it were deleted). CardDAV answers it with the
    ``DAV:valid-sync-token`` precondition; the client then syncs from scratch."""

    exit_code, http_status = 2, 403
