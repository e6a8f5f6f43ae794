"""Hostile files (issue 10): bad bytes, deep JSON, huge lines, unreadable paths.

Each reader answers with rows and line-numbered rejects, or raises the io layer's own
error; never ``UnicodeDecodeError``, ``RecursionError``, ``PermissionError``, and never by
holding a huge line in memory.
"""

from __future__ import annotations

import io
import os
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from contacts_cli.io import (
    MAX_JSON_DEPTH,
    MAX_LINE_CHARS,
    MAX_RECORD_CHARS,
    ContactsIOError,
    ImportFileError,
    JsonTooDeep,
    ParsedRow,
    UnreadableFileError,
    loads_bounded,
    open_file,
    open_text,
    read_contacts,
)
from contacts_cli.io.formats import SNIFF_CHARS
from contacts_cli.io.text import TextSource

BAD_LINE = 40_002
"""Far past the first 64 KiB read, where line numbers used to drift (35,967 reported)."""


def rows_of(data: bytes, format: str | None, encoding: str | None = None) -> list[ParsedRow]:
    return list(read_contacts(open_text(io.BytesIO(data), encoding), format))  # type: ignore[arg-type]


def rejected(rows: list[ParsedRow]) -> dict[int, str]:
    return {row.line: row.errors[0].message for row in rows if not row.ok}


# -- a byte that is not UTF-8, at a known line -----------------------------------------------


def csv_file() -> tuple[bytes, int]:
    lines = [b"name,emails\n"] + [b"P%d,p%d@example.com\n" % (i, i) for i in range(2, BAD_LINE)]
    lines += [b"Caf\xe9,cafe@example.com\n", b"Last,last@example.com\n"]
    return b"".join(lines), BAD_LINE + 1


def jsonl_file() -> tuple[bytes, int]:
    lines = [b'{"name": "P%d"}\n' % i for i in range(1, BAD_LINE)]
    lines += [b'{"name": "Caf\xe9"}\n', b'{"name": "Last"}\n']
    return b"".join(lines), BAD_LINE + 1


def json_file() -> tuple[bytes, int]:
    lines = [b"[\n"] + [b'{"name": "P%d"},\n' % i for i in range(2, BAD_LINE)]
    lines += [b'{"name": "Caf\xe9"},\n', b'{"name": "Last"}\n]\n']
    return b"".join(lines), BAD_LINE + 1


def vcf_file() -> tuple[bytes, int]:
    """Cards of four lines, then lines of blanks (ignored between cards), then two cards."""
    cards = [b"BEGIN:VCARD\nVERSION:3.0\nFN:P%d\nEND:VCARD\n" % k for k in range(100)]
    cards.append(b"    \n" * (BAD_LINE - 403))
    cards.append(b"BEGIN:VCARD\nVERSION:3.0\nFN:Caf\xe9\nEND:VCARD\n")  # FN at 40,002
    cards.append(b"BEGIN:VCARD\nVERSION:3.0\nFN:Last\nEND:VCARD\n")
    return b"".join(cards), 40_004


FILES: dict[str, Callable[[], tuple[bytes, int]]] = {
    "csv": csv_file, "jsonl": jsonl_file, "json": json_file, "vcf": vcf_file,
}


@pytest.mark.parametrize("format", sorted(FILES))
def test_a_bad_byte_far_into_the_file_is_rejected_at_its_exact_line(format: str) -> None:
    data, last_line = FILES[format]()
    offset = data.index(b"\xe9")
    bad_line = data[:offset].count(b"\n") + 1
    rows = rows_of(data, format)
    assert rejected(rows) == {
        bad_line: f"is not valid utf-8 text: byte 0xE9 at byte offset {offset}; "
        "give the file's encoding, e.g. cp1252"
    }
    assert rows[-1].line == last_line
    assert rows[-1].data is not None
    assert rows[-1].data["name"] == "Last"


@pytest.mark.parametrize("format", [None, "csv"])
def test_a_bad_byte_in_the_sniffed_head_is_a_reject_not_a_decode_error(
    format: str | None,
) -> None:
    data = b"name\n\xffAda\nBob\n"
    rows = rows_of(data, format)
    assert [(r.line, r.data) for r in rows] == [(2, None), (3, {"name": "Bob"})]
    assert "byte 0xFF at byte offset 5" in rows[0].errors[0].message


@pytest.mark.parametrize("format", [None, "csv", "json"])
def test_a_strict_text_stream_gives_a_file_error_not_a_decode_error(format: str | None) -> None:
    stream = io.TextIOWrapper(io.BytesIO(b"[\xff]\n" * 10), "utf-8", newline="")
    with pytest.raises(ImportFileError, match="not valid utf-8 text"):
        list(read_contacts(stream, format))  # type: ignore[arg-type]


def test_a_bad_byte_between_json_array_elements_stops_the_array_at_its_line() -> None:
    data = b'[{"name": "A"},\n\xff{"name": "B"}]'
    with pytest.raises(ImportFileError, match="byte 0xFF at byte offset 16") as info:
        rows_of(data, "json")
    assert info.value.line == 2


@pytest.mark.parametrize(
    ("encoding", "bad"),
    [("utf-16-le", b"\x00\xd8"), ("utf-16", b"\x00\xdc"), ("utf-32-le", b"\x00\x00\x11\x00")],
)
def test_offsets_are_exact_in_utf_16_and_32(encoding: str, bad: bytes) -> None:
    base = encoding.replace("-le", "") if encoding == "utf-16" else encoding
    head = "name\nAda\n".encode(base)
    data = head + bad + "x\nBob\n".encode(encoding.replace("utf-16", "utf-16-le")
                                          if encoding == "utf-16" else encoding)
    rows = rows_of(data, "csv", encoding)
    assert [(r.line, r.data) for r in rows] == [(2, {"name": "Ada"}), (3, None),
                                                (4, {"name": "Bob"})]
    assert f"at byte offset {len(head)};" in rows[1].errors[0].message


@pytest.mark.parametrize("format", [None, "csv", "vcf", "jsonl", "json"])
def test_binary_garbage_gives_rows_rejects_or_an_io_error(format: str | None) -> None:
    garbage = bytes(range(256)) * 64 + bytes((i * 7919) % 256 for i in range(70_000))
    try:
        rows = rows_of(garbage, format)
    except ContactsIOError:
        return
    assert all(row.line >= 1 for row in rows)


# -- JSON nested too deep ------------------------------------------------------------------


def deep(levels: int) -> str:
    return '{"name": ' + "[" * (levels - 1) + "]" * (levels - 1) + "}"


def test_loads_bounded_refuses_deep_json_before_decoding_it() -> None:
    with pytest.raises(JsonTooDeep, match=f"deeper than {MAX_JSON_DEPTH} levels"):
        loads_bounded(deep(10_000))
    with pytest.raises(ValueError):  # so callers that report bad JSON report this too
        loads_bounded(deep(MAX_JSON_DEPTH + 1))
    assert loads_bounded(deep(MAX_JSON_DEPTH))["name"] is not None
    assert loads_bounded('["' + "[" * 10_000 + '"]') == ["[" * 10_000]
    assert loads_bounded("[[1]]", max_depth=2) == [[1]]
    with pytest.raises(JsonTooDeep):
        loads_bounded("[[[1]]]", max_depth=2)


@pytest.mark.parametrize(
    ("format", "levels"),
    [("jsonl", MAX_JSON_DEPTH + 1), ("jsonl", 10_000), ("jsonl", 30_000),
     ("json", MAX_JSON_DEPTH + 1), ("json", 10_000), ("json", 30_000)],
)
def test_deep_json_is_a_line_numbered_reject(format: str, levels: int) -> None:
    elements = ['{"name": "A"}', deep(levels), '{"name": "C"}']
    text = "\n".join(elements) if format == "jsonl" else "[\n" + ",\n".join(elements) + "\n]"
    rows = rows_of(text.encode(), format)
    first = 1 if format == "jsonl" else 2
    assert [(r.line, r.data) for r in rows] == [
        (first, {"name": "A"}), (first + 1, None), (first + 2, {"name": "C"})
    ]
    assert rows[1].errors[0].message == f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels"


def test_a_json_array_at_the_depth_limit_is_read() -> None:
    text = "[" + deep(MAX_JSON_DEPTH - 1) + "]"
    [row] = rows_of(text.encode(), "json")
    assert row.ok


# -- lines and records too long to hold --------------------------------------------------------


class Generated:
    """A text source that makes its text as it is read, so the test holds none of it.

    Its text is the ``(piece, times)`` parts in order, each piece repeated.
    """

    def __init__(self, *parts: tuple[str, int]) -> None:
        self._parts: Iterator[tuple[str, int]] = iter(parts)
        self._piece, self._left = "", 0

    def read(self, size: int = -1, /) -> str:
        while self._left <= 0:
            next_part = next(self._parts, None)
            if next_part is None:
                return ""
            self._piece, self._left = next_part[0], len(next_part[0]) * next_part[1]
        take = min(size if size > 0 else self._left, self._left)
        self._left -= take
        whole, part = divmod(take, len(self._piece))
        return self._piece * whole + self._piece[:part]


def peak_bytes(read: Callable[[], list[ParsedRow]]) -> tuple[list[ParsedRow], int]:
    tracemalloc.start()
    try:
        rows = read()
        return rows, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


HUGE = 8 * 1024 * 1024
SOURCES: dict[str, Callable[[], TextSource]] = {
    "jsonl": lambda: Generated(('{"name": "A"}\n', 1), ('{"name": "', 1), ("x", HUGE),
                               ('"}\n{"name": "C"}\n', 1)),
    "csv": lambda: Generated(("name\nA\n", 1), ("x", HUGE), ("\nC\n", 1)),
    "vcf": lambda: Generated(("BEGIN:VCARD\nFN:A\nEND:VCARD\nBEGIN:VCARD\nNOTE:", 1),
                             ("x", HUGE), ("\nEND:VCARD\nBEGIN:VCARD\nFN:C\nEND:VCARD\n", 1)),
}
HUGE_LINE = {"jsonl": 2, "csv": 3, "vcf": 5}


@pytest.mark.parametrize("format", sorted(SOURCES))
def test_a_huge_line_is_rejected_without_being_held(format: str) -> None:
    rows, peak = peak_bytes(lambda: list(read_contacts(SOURCES[format](), format)))  # type: ignore[arg-type]
    line = HUGE_LINE[format]
    assert rejected(rows) == {line: f"is longer than {MAX_LINE_CHARS} characters"}
    assert rows[-1].data == {"name": "C"}
    assert peak < 2 * 1024 * 1024  # the line alone is 8 MiB


def test_a_csv_record_too_long_in_all_is_rejected_at_its_start() -> None:
    field_pair = '","' + "y" * 60 + "\n"  # each line closes a quoted field and opens one
    lines = MAX_RECORD_CHARS // len(field_pair) + 10
    source = Generated(('name,notes\nA,a\nB,"', 1), (field_pair, lines),
                       ('"\n', 1))
    rows = list(read_contacts(source, "csv"))
    assert rows[0] == ParsedRow(2, {"name": "A", "notes": "a"})
    assert rows[1].line == 3
    assert rows[1].errors[0].message.startswith(
        f"the record is longer than {MAX_RECORD_CHARS} characters"
    )


# -- files that cannot be opened -----------------------------------------------------------------


def test_a_directory_is_an_unreadable_file_naming_its_path(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match=f"cannot read {tmp_path}: is a directory"):
        open_file(tmp_path)


def test_a_missing_file_is_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError) as info:
        open_file(tmp_path / "nope.csv")
    assert info.value.path == str(tmp_path / "nope.csv")
    assert info.value.reason == "no such file or directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may read any file")
def test_a_file_without_read_permission_is_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.csv"
    path.write_text("name\nA\n")
    path.chmod(0)
    with pytest.raises(UnreadableFileError, match="permission denied"):
        open_file(path)


def test_an_opened_file_reads_through_open_text(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(b"name\nA\n" + b"B\n" * SNIFF_CHARS)
    with open_file(path) as binary:
        rows = list(read_contacts(open_text(binary)))
    assert len(rows) == 1 + SNIFF_CHARS
