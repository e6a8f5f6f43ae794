"""Streaming text helpers shared by the readers: chunks, BOM, mixed line endings."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO, Protocol

from contacts_cli.io.rows import ImportFileError

CHUNK_SIZE = 64 * 1024
BOM = "\ufeff"


class TextSource(Protocol):
    """What a reader needs from its input: ``read(size)`` returning ``""`` at the end."""

    def read(self, size: int = -1, /) -> str: ...


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
        except UnicodeDecodeError as exc:
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


def iter_lines(stream: TextSource, chunk_size: int = CHUNK_SIZE) -> Iterator[str]:
    """Physical lines, each ending in ``\\n`` (the last one may not), whatever the input used."""
    rest = ""
    for chunk in iter_chunks(stream, chunk_size):
        rest += chunk
        if "\n" not in chunk:
            continue
        lines = rest.split("\n")
        rest = lines.pop()
        for line in lines:
            yield line + "\n"
    if rest:
        yield rest


class PrefixedSource:
    """A source that first replays text already read (for format sniffing), then the rest."""

    def __init__(self, head: str, stream: TextSource) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1, /) -> str:
        if not self._head:
            return self._stream.read(size)
        if size < 0:
            head, self._head = self._head, ""
            return head + self._stream.read()
        head, self._head = self._head[:size], self._head[size:]
        return head


_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def open_text(binary: BinaryIO, encoding: str | None = None) -> io.TextIOWrapper:
    """Wrap a binary stream for the readers, streaming.

    The encoding is the one given, else the one its byte-order mark names (UTF-8, UTF-16,
    UTF-32), else UTF-8. Line endings are left to the readers (``newline=""``).
    """
    buffered: io.BufferedReader = (
        binary if isinstance(binary, io.BufferedReader) else io.BufferedReader(binary)  # type: ignore[arg-type]
    )
    if encoding is None:
        head = buffered.peek(4)[:4]
        encoding = next((name for bom, name in _BOMS if head.startswith(bom)), "utf-8")
    return io.TextIOWrapper(buffered, encoding=encoding, newline="")
