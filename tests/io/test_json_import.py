"""JSON Lines and JSON array import: line numbers, bad lines, read-only keys dropped."""

from __future__ import annotations

import io

import pytest

from contacts_cli.io import ImportFileError, ParsedRow, read_json, read_jsonl


def test_jsonl_lines_blank_lines_and_errors() -> None:
    text = (
        '\ufeff{"name": "Ada", "emails": ["a@x.org"], "id": "old", "version": 4}\r\n'
        "\n"
        "{bad json}\r"
        "[1, 2]\n"
        '{"name": "Zoë", "nick": "z"}'
    )
    rows = list(read_jsonl(io.StringIO(text)))
    assert [r.line for r in rows] == [1, 3, 4, 5]
    assert rows[0] == ParsedRow(1, {"name": "Ada", "emails": ["a@x.org"]})
    assert rows[1].errors[0].message.startswith("invalid JSON: ")
    assert rows[2].errors[0].message == "must be a JSON object of contact fields"
    assert rows[3].data == {"name": "Zoë", "nick": "z"}  # the domain rejects the unknown field


@pytest.mark.parametrize("chunk", [1, 5, 65536])
def test_json_array_streams_with_line_numbers(chunk: int) -> None:
    text = (
        '\ufeff[\r\n  {"name": "A"},\r\n  {"name": "B",\n   "notes": "x"}, 12345,\n'
        '{"name":"C"}\n]\n'
    )
    rows = list(read_json(_Chunked(text, chunk)))
    assert [(r.line, r.data) for r in rows] == [
        (2, {"name": "A"}),
        (3, {"name": "B", "notes": "x"}),
        (4, None),
        (5, {"name": "C"}),
    ]


class _Chunked(io.StringIO):
    def __init__(self, text: str, size: int) -> None:
        super().__init__(text)
        self.size = size

    def read(self, size: int | None = -1, /) -> str:
        return super().read(self.size)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ('{"name": "A"}', 1, "expected a JSON array"),
        ('[{"name": "A"}\n{"name": "B"}]', 2, "expected ',' or ']'"),
        ('[{"name": "A"},\n\n{"name": ]', 3, "invalid JSON"),
        ('[{"name": "A"}] trailing', 1, "unexpected text"),
        ('[{"name": "A"}', 1, "expected ',' or ']'"),
    ],
)
def test_json_array_errors(text: str, line: int, fragment: str) -> None:
    with pytest.raises(ImportFileError, match=fragment) as info:
        list(read_json(io.StringIO(text)))
    assert info.value.line == line


def test_empty_array() -> None:
    assert list(read_json(io.StringIO("[ ]"))) == []
