"""Line splitting: BOM, every line ending, CRLF split across reads, sniffing prefix."""

from __future__ import annotations

import io

import pytest

from contacts_cli.io import read_contacts
from contacts_cli.io.decoding import open_text
from contacts_cli.io.text import PrefixedSource, iter_chunks, iter_lines


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 65536])
def test_mixed_line_endings_and_bom(chunk_size: int) -> None:
    text = "\ufeffa\r\nb\rc\nd\r\n\r\ne"
    assert list(iter_lines(io.StringIO(text), chunk_size)) == [
        "a\n",
        "b\n",
        "c\n",
        "d\n",
        "\n",
        "e",
    ]


def test_trailing_cr_and_no_bom_inside() -> None:
    assert list(iter_lines(io.StringIO("x\r"), 1)) == ["x\n"]
    assert "".join(iter_chunks(io.StringIO("a\ufeffb"))) == "a\ufeffb"
    assert list(iter_lines(io.StringIO(""))) == []


def test_prefixed_source_replays_the_head() -> None:
    stream = io.StringIO("abcdefgh")
    head = stream.read(3)
    source = PrefixedSource(head, stream)
    assert source.read(2) == "ab"
    assert source.read(5) == "c"
    assert source.read(-1) == "defgh"
    assert source.read(4) == ""


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-32"])
def test_open_text_detects_boms(encoding: str) -> None:
    data = 'name,notes\r\nZoë,"a\rb"\n'.encode(encoding)
    rows = list(read_contacts(open_text(io.BytesIO(data)), "csv"))
    assert [(r.line, r.data) for r in rows] == [(2, {"name": "Zoë", "notes": "a\nb"})]


def test_a_wrong_encoding_rejects_the_lines_it_garbles_naming_byte_and_offset() -> None:
    data = "name\nA\nCafé\n".encode("cp1252")
    rows = list(read_contacts(open_text(io.BytesIO(data)), "csv"))
    assert [(r.line, r.data) for r in rows] == [(2, {"name": "A"}), (3, None)]
    assert rows[1].errors[0].message == (
        "is not valid utf-8 text: byte 0xE9 at byte offset 10; give the file's encoding, "
        "e.g. cp1252"
    )
    rows = list(read_contacts(open_text(io.BytesIO(data), "cp1252"), "csv"))
    assert [r.data for r in rows] == [{"name": "A"}, {"name": "Café"}]
