"""RFC 9457 problem details: every error the service returns is ``application/problem+json``.

Each body carries ``type``, ``title``, ``status`` and ``detail``; a validation problem (422)
also lists ``errors`` as ``{"field", "message"}`` pairs so a client can point at each field.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from starlette.responses import Response

from contacts_cli.backends.base import BackendError, Conflict, Invalid
from contacts_cli.backends.forwarding import NOT_HOSTED_HEADER, RETRY_AFTER_SECONDS, NotHostedHere

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://contacts.example/problems/"

_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    412: "precondition-failed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "too-many-requests",
    500: "internal-error",
    503: "unavailable",
    504: "timeout",
}


class HttpProblem(Exception):
    """Raised by a route to answer with a problem document instead of its normal response."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}


def invalid(field: str, message: str) -> HttpProblem:
    """A 422 naming one field."""
    return HttpProblem(422, f"{field}: {message}", errors=[(field, message)])


def problem_response(
    status: int,
    detail: str,
    *,
    errors: list[tuple[str, str]] | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Build the problem+json response for ``status``."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + _SLUGS.get(status, str(status)),
        "title": _title(status),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = [{"field": f, "message": m} for f, m in errors]
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(text, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def backend_error_response(error: BackendError, *, instance: str | None = None,
                           from_if_match: bool = True) -> Response:
    """Map a backend error onto its HTTP status (a stale version: 412 under If-Match, else 409).

    Every 503 says ``Retry-After`` (the database or the user's instance is expected back
    soon); one answering a forwarded request whose user lives on a third instance also says
    ``X-Contacts-Not-Hosted``, so the instance that forwarded it asks the database again."""
    status = error.http_status
    if isinstance(error, Conflict) and not from_if_match:
        status = 409
    errors = error.errors if isinstance(error, Invalid) else None
    detail = str(error) or _title(status)
    headers: dict[str, str] | None = None
    if status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        if isinstance(error, NotHostedHere):
            headers[NOT_HOSTED_HEADER] = "1"
    return problem_response(status, detail, errors=errors, instance=instance, headers=headers)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


ECHO_LIMIT = 80
"""Characters of a client's value a problem quotes back (a 100 KB header is not echoed)."""


def echo(value: str, limit: int = ECHO_LIMIT) -> str:
    """``repr`` of what the client sent, cut to ``limit`` characters, for a problem's detail."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"
