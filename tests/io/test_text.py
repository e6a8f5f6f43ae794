"""Line splitting: BOM, every line ending, CRLF split across reads, sniffing prefix."""

from __future__ import annotations

import io

import pytest

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
