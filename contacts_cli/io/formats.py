"""Format guessing and the one entry point the CLI and HTTP use to read a contacts file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePath
from typing import Literal, TypeAlias, get_args

from contacts_cli.io.csv_import import read_csv
from contacts_cli.io.errors import ImportFileError
from contacts_cli.io.json_import import read_json, read_jsonl
from contacts_cli.io.rows import ParsedRow
from contacts_cli.io.text import BOM, PrefixedSource, TextSource
from contacts_cli.io.vcard_import import read_vcards

Format: TypeAlias = Literal["csv", "vcf", "jsonl", "json"]
FORMATS: tuple[Format, ...] = get_args(Format)
SNIFF_CHARS = 4096

_EXTENSIONS: dict[str, Format] = {
    ".csv": "csv", ".vcf": "vcf", ".vcard": "vcf", ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".json": "json",
}


def format_from_name(filename: str | None) -> Format | None:
    if not filename:
        return None
    return _EXTENSIONS.get(PurePath(filename).suffix.lower())


def format_from_content(head: str) -> Format:
    """Guess from the first characters: a vCard, a JSON array, JSON Lines, else CSV."""
    text = head.lstrip(BOM + " \t\r\n")
    if text[:11].upper() == "BEGIN:VCARD":
        return "vcf"
    if text.startswith("["):
        return "json"
    if text.startswith("{"):
        return "jsonl"
    return "csv"


def guess_format(filename: str | None, head: str) -> Format:
    """The extension wins; content decides when there is none (or ``.json`` holds lines)."""
    by_name = format_from_name(filename)
    if by_name == "json" and format_from_content(head) == "jsonl":
        return "jsonl"
    return by_name or format_from_content(head)


def parse_format(value: str) -> Format:
    """Check a user-given ``--format`` value."""
    lowered = value.strip().lower()
    aliases: dict[str, Format] = {"vcard": "vcf", "ndjson": "jsonl"}
    lowered = aliases.get(lowered, lowered)
    for candidate in FORMATS:
        if lowered == candidate:
            return candidate
    raise ValueError(f"unknown format {value!r}; use one of {', '.join(FORMATS)}")


def read_contacts(
    stream: TextSource, format: Format | None = None, filename: str | None = None
) -> Iterator[ParsedRow]:
    """Stream parsed rows from ``stream`` in the given or guessed format."""
    if format is None:
        try:
            head = stream.read(SNIFF_CHARS)
        except UnicodeDecodeError as exc:  # a strict text stream (open_text never raises)
            raise ImportFileError(
                1,
                f"the file is not valid {exc.encoding} text in its first {SNIFF_CHARS} "
                f"characters ({exc.reason}); give its encoding, e.g. cp1252",
            ) from None
        format = guess_format(filename, head)
        stream = PrefixedSource(head, stream)
    if format == "csv":
        return read_csv(stream)
    if format == "vcf":
        return read_vcards(stream)
    if format == "jsonl":
        return read_jsonl(stream)
    if format == "json":
        return read_json(stream)
    raise ImportFileError(1, f"unknown format {format!r}")
