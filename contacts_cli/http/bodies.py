"""Reading request bodies safely: a byte limit per request, strict JSON, streamed JSON Lines.

A body is read in chunks and refused as soon as it passes the limit, so an oversized upload
never sits in memory; the import route instead limits each line and never holds the whole body.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request

from contacts_cli.http.problems import HttpProblem, echo
from contacts_cli.io.bounded_json import loads_bounded

_JSON_TYPES = ("application/json", "application/merge-patch+json")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_STRICT_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def loads_strict(data: bytes | str) -> Any:
    """``json.loads`` without the NaN/Infinity extensions Python accepts by default.

    The steps of ``json.loads`` with one decoder built once (``json.loads`` builds one per
    call when given ``parse_constant``; an import body has a line per row)."""
    if isinstance(data, str):
        if data.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", data, 0)
        return loads_bounded(data, decoder=_STRICT_DECODER)
    text = data.decode(json.detect_encoding(data), "surrogatepass")
    return loads_bounded(text, decoder=_STRICT_DECODER)


def check_json_content_type(request: Request, accepted: tuple[str, ...] = _JSON_TYPES) -> None:
    """Refuse a body declared as something other than JSON (a missing type is accepted)."""
    declared = request.headers.get("content-type")
    if declared is None:
        return
    media = declared.split(";", 1)[0].strip().lower()
    if media not in accepted and not media.endswith("+json"):
        raise HttpProblem(
            415, f"Content-Type must be one of {', '.join(accepted)}, got {echo(media)}"
        )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or 413 as soon as it (or its declared length) exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise HttpProblem(400, "Content-Length is not a number") from None
        if length > limit:
            raise HttpProblem(413, f"request body of {length} bytes exceeds the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HttpProblem(413, f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise HttpProblem(400, "the client disconnected before sending the whole body") from None
    return b"".join(chunks)


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """The body parsed as one JSON object; 400 for malformed JSON, 422 for another JSON type."""
    check_json_content_type(request)
    body = await read_body(request, limit)
    if not body.strip():
        raise HttpProblem(400, "the request body is empty; send a JSON object")
    try:
        value = loads_strict(body)
    except UnicodeDecodeError as exc:
        raise HttpProblem(400, f"the request body is not UTF-8: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise HttpProblem(
            400, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except ValueError as exc:
        raise HttpProblem(400, f"malformed JSON: {exc}") from None
    if not isinstance(value, dict):
        raise HttpProblem(
            422,
            f"the body must be a JSON object, got {type(value).__name__}",
            errors=[("body", "must be a JSON object")],
        )
    return value


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a JSON Lines body: its 1-based number and either a value or an error."""

    number: int
    value: dict[str, Any] | None
    error: str | None = None


async def json_lines(request: Request, max_line_bytes: int) -> AsyncIterator[Line]:
    """Stream the body's lines as JSON objects; a bad or overlong line becomes an error ``Line``.

    Blank lines are skipped but counted, so numbers match the sender's file.
    """
    buffer = bytearray()
    number = 0
    overlong = False
    try:
        async for chunk in request.stream():
            buffer += chunk
            start = 0  # consumed lines are dropped once per chunk, not moved up per line
            while True:
                end = buffer.find(b"\n", start)
                if end < 0:
                    del buffer[:start]
                    if len(buffer) > max_line_bytes:
                        overlong = True
                        buffer.clear()
                    break
                raw = bytes(buffer[start:end])
                start = end + 1
                number += 1
                if overlong or len(raw) > max_line_bytes:
                    overlong = False
                    yield Line(number, None, f"line exceeds the limit of {max_line_bytes} bytes")
                    continue
                if line := _parse_line(number, raw):
                    yield line
    except ClientDisconnect:
        return
    number += 1
    if overlong:
        yield Line(number, None, f"line exceeds the limit of {max_line_bytes} bytes")
    elif line := _parse_line(number, bytes(buffer)):
        yield line


def _parse_line(number: int, raw: bytes) -> Line | None:
    if not raw.strip():
        return None
    try:
        value = loads_strict(raw)
    except UnicodeDecodeError as exc:
        return Line(number, None, f"not UTF-8: {exc.reason}")
    except json.JSONDecodeError as exc:
        return Line(number, None, f"malformed JSON at column {exc.colno}: {exc.msg}")
    except ValueError as exc:
        return Line(number, None, f"malformed JSON: {exc}")
    if not isinstance(value, dict):
        return Line(number, None, f"must be a JSON object, got {type(value).__name__}")
    return Line(number, value)
