"""Streaming JSON readers: JSON Lines (one object a line) and a JSON array of objects."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from contacts_cli.domain import READ_ONLY_FIELDS
from contacts_cli.io.rows import ImportFileError, ParsedRow
from contacts_cli.io.text import TextSource, iter_chunks, iter_lines

MAX_OBJECT_CHARS = 1_000_000
_WHITESPACE = " \t\n"


def read_jsonl(stream: TextSource) -> Iterator[ParsedRow]:
    """One object per line; blank lines are skipped; a bad line does not stop the rest."""
    for number, line in enumerate(iter_lines(stream), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield ParsedRow.failed(number, f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        yield _row(number, value)


def read_json(stream: TextSource) -> Iterator[ParsedRow]:
    """A top-level JSON array of contact objects, decoded one element at a time.

    A syntax error makes the rest of the array unreadable, so it raises ImportFileError
    (rows before it have been yielded already).
    """
    decoder = json.JSONDecoder()
    chunks = iter_chunks(stream)
    buffer = ""
    pos = 0
    line = 1
    eof = False

    def more() -> bool:
        nonlocal buffer, pos, eof
        if eof:
            return False
        chunk = next(chunks, None)
        if chunk is None:
            eof = True
            return False
        buffer = buffer[pos:] + chunk
        pos = 0
        return True

    def skip_space() -> str:
        """Advance over whitespace (counting lines); return the next char or "" at EOF."""
        nonlocal pos, line
        while True:
            while pos < len(buffer) and buffer[pos] in _WHITESPACE:
                if buffer[pos] == "\n":
                    line += 1
                pos += 1
            if pos < len(buffer):
                return buffer[pos]
            if not more():
                return ""

    if skip_space() != "[":
        raise ImportFileError(line, "expected a JSON array of contact objects")
    pos += 1
    first = True
    while True:
        char = skip_space()
        if char == "]":
            pos += 1
            break
        if not first:
            if char != ",":
                raise ImportFileError(line, "expected ',' or ']' between array elements")
            pos += 1
            skip_space()
        first = False
        start_line = line
        while True:
            try:
                value, end = decoder.raw_decode(buffer, pos)
            except json.JSONDecodeError as exc:
                if len(buffer) - pos > MAX_OBJECT_CHARS or not more():
                    raise ImportFileError(
                        start_line + buffer.count("\n", pos, exc.pos), f"invalid JSON: {exc.msg}"
                    ) from None
                continue
            if end == len(buffer) and not eof and more():
                continue  # a number may go on in the next chunk: decode again with more text
            break
        line += buffer.count("\n", pos, end)
        pos = end
        yield _row(start_line, value)
    if skip_space():
        raise ImportFileError(line, "unexpected text after the JSON array")


def _row(line: int, value: Any) -> ParsedRow:
    if not isinstance(value, dict):
        return ParsedRow.failed(line, "must be a JSON object of contact fields")
    return ParsedRow(line, {k: v for k, v in value.items() if k not in READ_ONLY_FIELDS})
