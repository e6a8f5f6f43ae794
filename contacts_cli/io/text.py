"""Streaming text helpers shared by the readers: chunks, BOM, mixed line endings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

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
    while True:
        chunk = stream.read(chunk_size)
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
            yield chunk.replace("\r\n", "\n").replace("\r", "\n")
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
