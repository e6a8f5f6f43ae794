"""Format guessing from the file name or the content; read_contacts dispatch."""

from __future__ import annotations

import io

import pytest

from contacts_cli.io import ImportFileError, guess_format, parse_format, read_contacts


@pytest.mark.parametrize(
    ("filename", "head", "expected"),
    [
        ("a.CSV", "BEGIN:VCARD", "csv"),
        ("a.vcf", "", "vcf"),
        ("a.vcard", "", "vcf"),
        ("a.jsonl", "", "jsonl"),
        ("a.ndjson", "", "jsonl"),
        ("a.json", "[{}]", "json"),
        ("a.json", '{"name": "x"}\n', "jsonl"),
        (None, "\ufeff\r\nbegin:vcard\r\n", "vcf"),
        (None, "  [", "json"),
        (None, '{"name":', "jsonl"),
        ("contacts.txt", "name,emails\n", "csv"),
        (None, "", "csv"),
    ],
)
def test_guess_format(filename: str | None, head: str, expected: str) -> None:
    assert guess_format(filename, head) == expected


def test_parse_format() -> None:
    assert parse_format(" VCF ") == "vcf"
    assert parse_format("vcard") == "vcf"
    with pytest.raises(ValueError, match="csv, vcf, jsonl, json"):
        parse_format("xml")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("name\nAda\n", 2),
        ("BEGIN:VCARD\nVERSION:4.0\nFN:Ada\nEND:VCARD\n", 1),
        ('{"name": "Ada"}\n', 1),
        ('[\n{"name": "Ada"}]', 2),
    ],
)
def test_read_contacts_sniffs_without_losing_the_head(text: str, line: int) -> None:
    rows = list(read_contacts(io.StringIO(text)))
    assert [(r.line, r.data) for r in rows] == [(line, {"name": "Ada"})]


def test_explicit_format_wins() -> None:
    with pytest.raises(ImportFileError, match="unknown column"):
        list(read_contacts(io.StringIO('{"name": "Ada"}\n'), format="csv"))
