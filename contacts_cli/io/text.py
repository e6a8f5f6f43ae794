"""Streaming text for the readers: chunks, BOM, mixed line endings, and lines that cannot be read.

Two kinds of line are never handed to a reader: one longer than :data:`MAX_LINE_CHARS`
(it is dropped as it streams by, never held whole) and one holding a character that is not
text (a byte the decoding could not decode, or a lone surrogate). :class:`Lines` yields
such a line as an empty one, so every line number stays exact, and notes it in
:attr:`Lines.bad` for the reader to reject the record it belongs to.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from contacts_cli.io.decoding import Undecodable, marker_byte
from contacts_cli.io.errors import ImportFileError

CHUNK_SIZE = 64 * 1024
BOM = "\ufeff"
MAX_LINE_CHARS = 64 * 1024
"""The longest line a reader accepts: the HTTP import's limit on a JSON Lines line."""
MAX_RECORD_CHARS = 1024 * 1024
"""The largest record (a multi-line CSV record, a vCard) a reader holds."""
_SURROGATE = re.compile("[\ud800-\udfff]")


class TextSource(Protocol):
    """What a reader needs from its input: ``read(size)`` returning ``""`` at the end."""

    def read(self, size: int = -1, /) -> str: ...


@runtime_checkable
class MarkedSource(Protocol):
    """A source whose lone surrogates are markers for undecodable bytes (see decoding)."""

    @property
    def undecodable(self) -> Undecodable | None: ...


def iter_chunks(stream: TextSource, chunk_size: int = CHUNK_SIZE) -> Iterator[str]:
    """Text chunks with a leading BOM dropped and ``\\r\\n``/``\\r`` turned into ``\\n``.

    A ``\\r`` at the end of a chunk is held back until the next chunk shows whether a
    ``\\n`` follows, so a CRLF split across reads still counts as one line break.
    """
    first = True
    pending_cr = False
    lines_done = 0
    while True:
        try:
            chunk = stream.read(chunk_size)
        except UnicodeDecodeError as exc:  # a strict text stream (open_text never raises)
            raise ImportFileError(
                lines_done + 1,
                f"the file is not valid {exc.encoding} text at or after this line "
                f"({exc.reason}); give its encoding, e.g. cp1252",
            ) from None
        if not chunk:
            break
        if first:
            first = False
            if chunk.startswith(BOM):
                chunk = chunk[1:]
        if pending_cr:
            chunk = "\r" + chunk
            pending_cr = False
        if chunk.endswith("\r"):
            chunk = chunk[:-1]
            pending_cr = True
        if chunk:
            text = chunk.replace("\r\n", "\n").replace("\r", "\n")
            lines_done += text.count("\n")
            yield text
    if pending_cr:
        yield "\n"


def may_hold_bad_text(text: str, undecodable: Undecodable | None) -> bool:
    """Whether ``text`` may hold a lone surrogate (a marker, or one a str source held).

    Free for a decoding source with no markers pending (it notes each as it makes one) and
    for ASCII text; otherwise one C-speed UTF-8 encoding, five times faster than a regex.
    """
    if undecodable is not None:
        return bool(undecodable.offsets)
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def find_bad_text(text: str, start: int = 0, end: int | None = None) -> int:
    """The index of the first lone surrogate in ``text[start:end]``, or -1."""
    found = _SURROGATE.search(text, start, len(text) if end is None else end)
    return -1 if found is None else found.start()


def bad_text_message(text: str, undecodable: Undecodable | None) -> str | None:
    """Why ``text`` is not text, naming its first bad byte or character; None if it is.

    Consumes the offsets of every marker in ``text``, so call it once per stretch of text,
    in reading order.
    """
    found = _SURROGATE.search(text) if not text.isascii() else None
    if found is None:
        return None
    char = found.group()
    if undecodable is None:
        return (f"holds U+{ord(char):04X} at column {found.start() + 1}, a lone surrogate, "
                "which is not text")
    offset = undecodable.take(len(_SURROGATE.findall(text)))
    where = f" at byte offset {offset}" if offset is not None else ""
    return (f"is not valid {undecodable.encoding} text: byte 0x{marker_byte(char) or 0:02X}"
            f"{where}; give the file's encoding, e.g. cp1252")


def undecodable_of(stream: TextSource) -> Undecodable | None:
    return stream.undecodable if isinstance(stream, MarkedSource) else None


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line :class:`Lines` did not hand over, and why (for the reader's reject)."""

    number: int
    message: str


class Lines:
    """The physical lines of a source, each ending in ``\\n`` (the last one may not).

    A line that is too long or not text is yielded as ``"\\n"`` and noted in :attr:`bad`;
    a reader that finds ``bad`` non-empty takes the notes for the lines it has read with
    :meth:`take_bad`. A clean chunk (nearly all) costs one ``max(map(len, ...))`` and
    :func:`may_hold_bad_text` more than a plain split.
    """

    def __init__(
        self, stream: TextSource, chunk_size: int = CHUNK_SIZE, max_chars: int = MAX_LINE_CHARS
    ) -> None:
        self._stream = stream
        self._chunk_size = chunk_size
        self._max = max_chars
        self._undecodable = undecodable_of(stream)
        self.bad: deque[BadLine] = deque()

    def take_bad(self, last: int | None = None) -> BadLine | None:
        """Drop the notes for lines up to ``last`` (all if None); return the first of them."""
        first = None
        while self.bad and (last is None or self.bad[0].number <= last):
            note = self.bad.popleft()
            first = first or note
        return first

    def __iter__(self) -> Iterator[str]:
        rest = ""  # the start of the line in progress
        overlong = False  # the line in progress passed the limit: its text is being dropped
        done = 0  # lines yielded
        for chunk in iter_chunks(self._stream, self._chunk_size):
            lines = chunk.split("\n")
            tail = lines.pop()
            if lines:
                if overlong:
                    self._drop(lines[0])
                    lines[0] = ""
                else:
                    lines[0] = rest + lines[0]
                if overlong or self._may_be_bad(chunk) or self._may_be_bad(rest) or (
                    max(map(len, lines)) > self._max
                ):
                    yield from self._checked(lines, done, overlong)
                else:
                    for line in lines:
                        yield line + "\n"
                done += len(lines)
                rest, overlong = "", False
            if overlong:
                self._drop(tail)
            elif len(rest) + len(tail) > self._max:
                self._drop(rest + tail)
                rest, overlong = "", True
            else:
                rest += tail
        if overlong or rest:
            [line] = self._checked([rest], done, overlong)
            yield line if line == "\n" else rest

    def _checked(self, lines: list[str], done: int, overlong_first: bool) -> Iterator[str]:
        """The slow path: each line checked for length and bad text."""
        for index, line in enumerate(lines):
            number = done + index + 1
            overlong = index == 0 and overlong_first
            if not overlong and len(line) > self._max:
                self._drop(line)
                overlong = True
            message = (f"is longer than {self._max} characters" if overlong
                       else bad_text_message(line, self._undecodable))
            if message is None:
                yield line + "\n"
            else:
                self.bad.append(BadLine(number, message))
                yield "\n"

    def _may_be_bad(self, text: str) -> bool:
        return may_hold_bad_text(text, self._undecodable)

    def _drop(self, text: str) -> None:
        """Forget text that is not handed over, with the offsets of its markers."""
        if self._undecodable is not None and self._may_be_bad(text):
            self._undecodable.take(len(_SURROGATE.findall(text)))


def iter_lines(stream: TextSource, chunk_size: int = CHUNK_SIZE) -> Iterator[str]:
    """Physical lines, each ending in ``\\n`` (the last one may not), whatever the input used.

    Lines that are too long or not text come out empty; see :class:`Lines`.
    """
    return iter(Lines(stream, chunk_size))


class PrefixedSource:
    """A source that first replays text already read (for format sniffing), then the rest."""

    def __init__(self, head: str, stream: TextSource) -> None:
        self._head = head
        self._stream = stream

    @property
    def undecodable(self) -> Undecodable | None:
        return undecodable_of(self._stream)

    def read(self, size: int = -1, /) -> str:
        if not self._head:
            return self._stream.read(size)
        if size < 0:
            head, self._head = self._head, ""
            return head + self._stream.read()
        head, self._head = self._head[:size], self._head[size:]
        return head
