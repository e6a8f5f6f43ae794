"""The HTTP endpoints: each one parses and validates its input, calls the backend, shapes JSON.

No contact logic lives here; the backend (in-process actors) decides, the routes only translate
between HTTP (paths, headers, status codes) and backend calls.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from contacts_cli import server_proof
from contacts_cli.backends.base import (
    ContactJson,
    ContactList,
    DuplicatePolicy,
    NumberedRow,
    RowError,
)
from contacts_cli.backends.errors import BackendError
from contacts_cli.http.bodies import Line, json_lines, read_json_object
from contacts_cli.http.conditional import etag, expected_version, not_modified
from contacts_cli.http.problems import HttpProblem, echo, invalid
from contacts_cli.service.ids import check_user_id

if TYPE_CHECKING:
    from contacts_cli.http.app import ServiceState

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
MAX_CHALLENGE = server_proof.MAX_CHALLENGE
CHALLENGE = re.compile(rf"[\x21-\x7e]{{1,{MAX_CHALLENGE}}}")
MAX_LIMIT = 1000
MAX_QUERY = 1000
MAX_CHUNK_SIZE = 10_000
"""The most rows ``?chunk_size=`` may put in one durable chunk of an import."""
JSONL = "application/x-ndjson"


class JSONBody(Response):
    """A compact UTF-8 JSON response (orjson: a tenth of the standard library's time)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def state(request: Request) -> ServiceState:
    service: ServiceState = request.app.state.service
    return service


def user_id(request: Request) -> str:
    """The path's user id, checked against the allowed alphabet (422 otherwise)."""
    return check_user_id(request.path_params["user_id"])


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise invalid(
            "Idempotency-Key", "must be 1 to 200 visible ASCII characters without spaces"
        )
    return key


def contact_response(contact: ContactJson, request: Request, status: int = 200) -> Response:
    headers = {"ETag": etag(contact)}
    if status == 201:
        user = request.path_params["user_id"]
        headers["Location"] = f"/api/{user}/contacts/{quote(contact['id'], safe='')}"
    return JSONBody(contact, status_code=status, headers=headers)


# -- operations ------------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    """Liveness; given a ``challenge``, also the proof that this process wrote ``server.json``
    (:mod:`contacts_cli.server_proof`), when it did."""
    body = {"status": "ok"}
    challenge = request.query_params.get("challenge")
    if challenge is not None:
        if not CHALLENGE.fullmatch(challenge):
            raise invalid("challenge", f"must be 1 to {MAX_CHALLENGE} visible ASCII characters")
        nonce = state(request).discovery_nonce
        if nonce:
            body["proof"] = server_proof.answer(nonce, challenge)
    return JSONBody(body)


async def readyz(request: Request) -> Response:
    await state(request).backend.ping()
    return JSONBody({"status": "ready"})


async def stats(request: Request) -> Response:
    return JSONBody(await state(request).backend.stats())


# -- contacts --------------------------------------------------------------------------------


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(name, f"must be an integer, got {echo(raw)}") from None
    if not low <= value <= high:
        raise invalid(name, f"must be between {low} and {high}, got {value}")
    return value


def parse_instant(raw: str, field: str) -> datetime:
    """An ISO 8601 instant; one without an offset is taken as UTC."""
    text = raw.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(field, f"must be an ISO 8601 date-time, got {echo(raw)}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def list_contacts(request: Request) -> Response:
    user = user_id(request)
    backend = state(request).backend
    params = request.query_params
    q = params.get("q")
    if q is not None and len(q) > MAX_QUERY:
        raise invalid("q", f"must be at most {MAX_QUERY} characters")
    cursor = params.get("cursor")
    if (as_of := params.get("as_of")) is not None:
        if q or cursor:  # empty ones mean "none", as they do without as_of
            raise invalid("as_of", "cannot be combined with q or cursor")
        when = parse_instant(as_of, "as_of")
        pages = backend.as_of_pages(user, when)
        first = await anext(pages, None)  # errors become a problem response, not a cut body
        return StreamingResponse(_as_of_body(first, pages, when), media_type="application/json")
    limit = _int_param(request, "limit", 50, 1, MAX_LIMIT)
    page = await backend.list(user, limit=limit, cursor=cursor or None, q=q or None)
    return JSONBody(page)


async def _as_of_body(
    first: ContactList | None, pages: AsyncIterator[ContactList], when: datetime
) -> AsyncIterator[bytes]:
    """``{"items": [...], "next_cursor": null, "as_of": ...}`` a page of contacts a chunk:
    the bytes :class:`JSONBody` would send, without ever holding the whole body (100,000
    contacts are 34 MB of JSON)."""
    yield b'{"items":['
    separator = b""
    page = first
    while page is not None:
        if page:
            yield separator + orjson.dumps(page)[1:-1]
            separator = b","
        page = await anext(pages, None)
    yield b'],"next_cursor":null,"as_of":' + orjson.dumps(when.isoformat()) + b"}"


async def create_contact(request: Request) -> Response:
    user = user_id(request)
    service = state(request)
    key = idempotency_key(request)
    data = await read_json_object(request, service.settings.max_body_bytes)
    contact = await service.backend.create(user, data, idempotency_key=key)
    return contact_response(contact, request, status=201)


async def get_contact(request: Request) -> Response:
    user = user_id(request)
    contact = await state(request).backend.get(user, request.path_params["contact_id"])
    cached = not_modified(request, contact)
    return cached if cached is not None else contact_response(contact, request)


async def update_contact(request: Request) -> Response:
    user = user_id(request)
    service = state(request)
    version = expected_version(request)
    changes = await read_json_object(request, service.settings.max_body_bytes)
    contact = await service.backend.update(
        user, request.path_params["contact_id"], changes, expected_version=version
    )
    return contact_response(contact, request)


async def remove_contact(request: Request) -> Response:
    user = user_id(request)
    version = expected_version(request)
    contact = await state(request).backend.remove(
        user, request.path_params["contact_id"], expected_version=version
    )
    return contact_response(contact, request)


async def contact_history(request: Request) -> Response:
    user = user_id(request)
    events = await state(request).backend.history(user, request.path_params["contact_id"])
    return JSONBody(events)


_POLICIES: dict[str, DuplicatePolicy] = {"skip": "skip", "update": "update", "create": "create"}


async def import_contacts(request: Request) -> Response:
    """Stream a JSON Lines body into the user's actor; stream one outcome per row back.

    Each outcome line is written only once its chunk is durable; the last line is a summary.
    """
    user = user_id(request)
    service = state(request)
    key = idempotency_key(request)
    raw_policy = request.query_params.get("policy", "skip")
    if raw_policy not in _POLICIES:
        raise invalid("policy", f"must be one of skip, update, create; got {echo(raw_policy)}")
    policy = _POLICIES[raw_policy]
    chunk_size = _int_param(request, "chunk_size", service.settings.import_chunk_size, 1,
                            MAX_CHUNK_SIZE)
    dry_run = request.query_params.get("dry_run", "false").lower() in {"1", "true", "yes"}
    more = request.query_params.get("more", "false").lower() in {"1", "true", "yes"}
    # Line n of the body is row n + first_row - 1: how an instance forwards one chunk of an
    # import with the row numbers (and idempotency keys) of the original request.
    offset = _int_param(request, "first_row", 1, 1, 2**53) - 1
    declared = request.headers.get("content-type")
    if declared is not None:
        media = declared.split(";", 1)[0].strip().lower()
        if media not in {JSONL, "application/jsonl", "application/json-lines", "text/plain",
                         "application/json", "application/octet-stream"}:
            raise HttpProblem(415, f"Content-Type must be {JSONL}, got {echo(media)}")
    chunks = service.backend.import_numbered_chunks(
        user, _numbered(json_lines(request, service.settings.max_line_bytes), offset),
        policy=policy, chunk_size=chunk_size, dry_run=dry_run, idempotency_key=key, more=more,
    )
    first = await anext(aiter(chunks), None)

    async def body() -> AsyncIterator[bytes]:
        # A chunk's outcome lines go out in one piece, once the chunk is durable.
        counts = {"created": 0, "updated": 0, "skipped": 0, "rejected": 0}
        pending = first
        iterator = aiter(chunks)
        while pending is not None:
            for outcome in pending:
                counts[outcome["outcome"]] = counts.get(outcome["outcome"], 0) + 1
            yield b"".join([_line(outcome) for outcome in pending])
            try:
                pending = await anext(iterator, None)
            except BackendError as error:
                # The status line is already sent: report the failure in-band and stop. Rows
                # without an outcome line were not acknowledged; re-send them with the same key.
                yield _line({"error": {"status": error.http_status, "detail": str(error)}})
                return
        yield _line({"summary": {**counts, "rows": sum(counts.values()), "dry_run": dry_run}})

    return RequestBodyStreamingResponse(body(), media_type=JSONL)


async def _numbered(lines: AsyncIterator[Line], offset: int = 0) -> AsyncIterator[NumberedRow]:
    async for line in lines:
        number = line.number + offset
        if line.value is None:
            yield number, RowError(number, [("line", line.error or "unreadable")])
        else:
            yield number, line.value


class RequestBodyStreamingResponse(StreamingResponse):
    """A streaming response whose body iterator is still reading the request body.

    Starlette's StreamingResponse (for ASGI servers before spec 2.4) listens for a disconnect
    with ``receive()`` while it streams, which would swallow the request body's remaining
    messages; here only the body iterator calls ``receive()``, and a client that goes away
    shows up there as a disconnect.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.stream_response(send)


def _line(value: dict[str, Any]) -> bytes:
    """One compact JSON line (an import writes one per row). For the values an outcome holds
    (text, integers, lists, None) the bytes are those of
    ``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``."""
    return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)
