"""Streaming JSON readers: JSON Lines (one object a line) and a JSON array of objects.

Both bound the nesting of what they accept at :data:`MAX_JSON_DEPTH`, so a hostile file
gets a line-numbered reject, never a ``RecursionError``: JSON Lines checks each line before
decoding it (:func:`loads_bounded`); the array reader decodes each element in place, where
``json``'s own recursion guard stops a hostile one early, and checks it after.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from contacts_cli.domain import READ_ONLY_FIELDS
from contacts_cli.io.bounded_json import MAX_JSON_DEPTH, loads_bounded, nests_deeper, value_end
from contacts_cli.io.errors import ImportFileError, JsonTooDeep
from contacts_cli.io.rows import ParsedRow
from contacts_cli.io.text import (
    MAX_RECORD_CHARS,
    Lines,
    TextSource,
    bad_text_message,
    find_bad_text,
    iter_chunks,
    may_hold_bad_text,
    undecodable_of,
)

_WHITESPACE = " \t\n"
_TOO_DEEP = f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels"
_DEEP = object()
"""Stands for the value of an element nested too deep."""


def read_jsonl(stream: TextSource) -> Iterator[ParsedRow]:
    """One object per line; blank lines are skipped; a bad line does not stop the rest."""
    lines = Lines(stream)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            bad = lines.take_bad(number) if lines.bad else None
            if bad is not None:
                yield ParsedRow.failed(number, bad.message)
            continue
        try:
            value = loads_bounded(line)
        except JsonTooDeep:
            yield ParsedRow.failed(number, _TOO_DEEP)
            continue
        except json.JSONDecodeError as exc:
            yield ParsedRow.failed(number, f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        yield _row(number, value)


def read_json(stream: TextSource) -> Iterator[ParsedRow]:
    """A top-level JSON array of contact objects, decoded one element at a time.

    A syntax error makes the rest of the array unreadable, so it raises ImportFileError
    (rows before it have been yielded already); an element nested too deep or holding
    bytes that are not text is rejected and the array read on.
    """
    array = _ArrayReader(stream)
    if array.skip_space() != "[":
        raise array.error("expected a JSON array of contact objects")
    array.pos += 1
    first = True
    while True:
        char = array.skip_space()
        if char == "]":
            array.pos += 1
            break
        if not first:
            if char != ",":
                raise array.error("expected ',' or ']' between array elements")
            array.pos += 1
            array.skip_space()
        first = False
        yield array.element()
    if array.skip_space():
        raise array.error("unexpected text after the JSON array")


class _ArrayReader:
    """The text of a JSON array as it streams in: a buffer, a position in it, its line.

    Elements are decoded in place in the buffer, so a per-chunk check would cost as much as
    the decoding (a 64 KiB chunk holds some 600 contacts): depth is checked per element
    from its brackets (free for a real contact) and bad text per chunk.
    """

    __slots__ = ("_chunks", "_decoder", "_dirty", "_eof", "_undecodable", "buffer", "line", "pos")

    def __init__(self, stream: TextSource) -> None:
        self._chunks = iter_chunks(stream)
        self._undecodable = undecodable_of(stream)
        self._decoder = json.JSONDecoder()
        self.buffer = ""
        self.pos = 0
        self.line = 1
        self._eof = False
        self._dirty = False

    def more(self) -> bool:
        """Append the next chunk (dropping what was read); False at the end of the stream."""
        if self._eof:
            return False
        chunk = next(self._chunks, None)
        if chunk is None:
            self._eof = True
            return False
        self.buffer = self.buffer[self.pos :] + chunk
        self.pos = 0
        self._dirty = may_hold_bad_text(self.buffer, self._undecodable)
        return True

    def skip_space(self) -> str:
        """Advance over whitespace (counting lines); return the next char or "" at EOF."""
        buffer, pos = self.buffer, self.pos
        while True:
            while pos < len(buffer) and buffer[pos] in _WHITESPACE:
                if buffer[pos] == "\n":
                    self.line += 1
                pos += 1
            self.pos = pos
            if pos < len(buffer):
                return buffer[pos]
            if not self.more():
                return ""
            buffer, pos = self.buffer, self.pos

    def error(self, message: str, at: int | None = None) -> ImportFileError:
        """An ImportFileError at ``at`` (default: here), naming a bad byte if one is there."""
        at = self.pos if at is None else at
        line = self.line + self.buffer.count("\n", self.pos, at)
        if self._dirty:
            bad = find_bad_text(self.buffer, self.pos, at + 1)
            if bad >= 0:
                line = self.line + self.buffer.count("\n", self.pos, bad)
                message = bad_text_message(self.buffer[bad], self._undecodable) or message
        return ImportFileError(line, message)

    def element(self) -> ParsedRow:
        """Decode the element at ``pos`` and move past it."""
        start_line = self.line
        while True:
            try:
                value, end = self._decoder.raw_decode(self.buffer, self.pos)
            except RecursionError:
                value, end = _DEEP, self._end_of_deep_value()
                break
            except json.JSONDecodeError as exc:
                if not self._grow():
                    raise self.error(f"invalid JSON: {exc.msg}", exc.pos) from None
                continue
            if end == len(self.buffer) and not self._eof and self.more():
                continue  # a number may go on in the next chunk: decode again with more text
            buffer, start = self.buffer, self.pos
            if buffer.count("[", start, end) + buffer.count("{", start, end) > MAX_JSON_DEPTH:
                value = _DEEP if nests_deeper(buffer[start:end]) else value
            break
        text_start, self.pos = self.pos, end
        self.line += self.buffer.count("\n", text_start, end)
        if self._dirty and (bad := find_bad_text(self.buffer, text_start, end)) >= 0:
            message = bad_text_message(self.buffer[bad:end], self._undecodable) or ""
            return ParsedRow.failed(start_line + self.buffer.count("\n", text_start, bad), message)
        if value is _DEEP:
            return ParsedRow.failed(start_line, _TOO_DEEP)
        return _row(start_line, value)

    def _end_of_deep_value(self) -> int:
        """The end of the array or object at ``pos``, read on to find it (by its brackets)."""
        while True:
            end = value_end(self.buffer, self.pos)
            if end is not None:
                return end
            if not self._grow():
                raise self.error(_TOO_DEEP)

    def _grow(self) -> bool:
        """More text for an element that is not complete yet, unless it is too large."""
        return len(self.buffer) - self.pos <= MAX_RECORD_CHARS and self.more()


def _row(line: int, value: Any) -> ParsedRow:
    if not isinstance(value, dict):
        return ParsedRow.failed(line, "must be a JSON object of contact fields")
    return ParsedRow(line, {k: v for k, v in value.items() if k not in READ_ONLY_FIELDS})
