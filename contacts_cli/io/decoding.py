"""From bytes to text for the readers: opening a file, its encoding, and bytes that are not text.

A file read through :class:`DecodedText` never raises ``UnicodeDecodeError``. Each byte that
is not valid in the encoding becomes one *marker*, a lone surrogate ``U+DC00 + byte``
(which no strict decoding ever yields), and its byte offset is noted in
:attr:`DecodedText.undecodable`, in order. The line splitter finds the markers, so the
reader rejects exactly the record holding a bad byte, naming its line and byte offset,
and reads on.
"""

from __future__ import annotations

import codecs
import os
from collections import deque
from contextvars import ContextVar
from typing import BinaryIO

from contacts_cli.io.errors import ImportFileError, UnreadableFileError

CHUNK_BYTES = 64 * 1024
_MARK = "contacts_cli.io.mark-undecodable"
_bad_spans: ContextVar[list[tuple[int, int, int]] | None] = ContextVar(
    "contacts_cli.io.bad_spans", default=None
)
"""Where the decoder called :func:`_mark_undecodable` during one ``decode`` call:
``(len(exc.object), exc.start, exc.end)`` per call, for :meth:`DecodedText._decode`."""


def _mark_undecodable(exc: UnicodeError) -> tuple[str, int]:
    """A codec error handler: one marker per undecodable byte, noting where they were."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    spans = _bad_spans.get()
    if spans is not None:
        spans.append((len(exc.object), exc.start, exc.end))
    return "".join(chr(0xDC00 | byte) for byte in exc.object[exc.start : exc.end]), exc.end


codecs.register_error(_MARK, _mark_undecodable)


def marker_byte(char: str) -> int | None:
    """The byte a marker stands for, or None if ``char`` is not a marker."""
    code = ord(char)
    return code - 0xDC00 if 0xDC00 <= code <= 0xDCFF else None


class Undecodable:
    """The byte offsets of the markers a :class:`DecodedText` wrote, not yet reported."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.offsets: deque[int] = deque()

    def take(self, count: int) -> int | None:
        """Drop the next ``count`` offsets (their markers were read); return the first."""
        first = self.offsets[0] if self.offsets and count else None
        for _ in range(min(count, len(self.offsets))):
            self.offsets.popleft()
        return first


class DecodedText:
    """A text source over a binary stream that marks undecodable bytes instead of raising.

    Byte offsets are exact for UTF-8, UTF-16, UTF-32 and single-byte encodings (whose
    decoders report errors relative to the bytes they were given plus the few they held).
    """

    def __init__(self, binary: BinaryIO, encoding: str = "utf-8", *, head: bytes = b"") -> None:
        """``head``: bytes already read from ``binary`` (to sniff a BOM), decoded first."""
        self._binary = binary
        self._head = head
        info = codecs.lookup(encoding)
        self._decoder = info.incrementaldecoder(_MARK)
        self._consumed = 0
        self._surplus = ""
        self._eof = False
        self.undecodable = Undecodable(info.name)

    @property
    def encoding(self) -> str:
        return self.undecodable.encoding

    def read(self, size: int = -1, /) -> str:
        """Up to ``size`` characters (all if negative), maybe fewer; ``""`` only at the end.

        Each call reads ``size`` bytes at most once more than it must to return anything,
        so a chunked reader gets one decode per chunk and no copying.
        """
        if size < 0:
            return "".join(iter(lambda: self.read(CHUNK_BYTES), ""))
        text, self._surplus = self._surplus, ""
        while not text and not self._eof:
            data = self._head or self._binary.read(max(size, 1))
            self._head = b""
            self._eof = not data
            text = self._decode(data, final=self._eof)
        if len(text) > size:
            text, self._surplus = text[:size], text[size:]
        return text

    def _decode(self, data: bytes, final: bool) -> str:
        spans: list[tuple[int, int, int]] = []
        token = _bad_spans.set(spans)
        try:
            text = self._decoder.decode(data, final)
        except UnicodeError as exc:  # not a bad byte: "UTF-16 stream does not start with BOM"
            raise ImportFileError(1, f"cannot read the file as {self.encoding}: {exc}; "
                                     "give its encoding, e.g. utf-16-le") from None
        finally:
            _bad_spans.reset(token)
        end = self._consumed + len(data)
        for length, start, stop in spans:
            base = end - length  # the decoder saw the bytes it held, then ``data``
            self.undecodable.offsets.extend(range(base + start, base + stop))
        self._consumed = end
        return text


_BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def open_text(binary: BinaryIO, encoding: str | None = None) -> DecodedText:
    """The readers' text source for a binary stream, streaming.

    The encoding is the one given, else the one its byte-order mark names (UTF-8, UTF-16,
    UTF-32), else UTF-8. Line endings are left to the readers.
    """
    if encoding is None:
        head = binary.read(4)
        encoding = next((name for bom, name in _BOMS if head.startswith(bom)), "utf-8")
        return DecodedText(binary, encoding, head=head)
    return DecodedText(binary, encoding)


def open_file(path: str | os.PathLike[str], *, buffering: int = -1) -> BinaryIO:
    """Open a contacts file for reading in binary; raises UnreadableFileError naming it."""
    try:
        return open(path, "rb", buffering=buffering)
    except OSError as exc:
        raise UnreadableFileError(path, (exc.strerror or str(exc)).lower()) from None
