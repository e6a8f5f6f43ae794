"""Streaming import and export of contacts: CSV (ours, Google, Outlook), vCard, JSON (Lines).

Readers take a text stream and yield :class:`ParsedRow` (1-based start line, raw fields or
parse errors) without loading the whole file; the domain validates the fields.
"""

from contacts_cli.io.csv_import import OUR_COLUMNS, read_csv
from contacts_cli.io.export import (
    export_contacts,
    write_csv,
    write_json,
    write_jsonl,
    write_vcards,
)
from contacts_cli.io.formats import (
    FORMATS,
    Format,
    format_from_content,
    format_from_name,
    guess_format,
    parse_format,
    read_contacts,
)
from contacts_cli.io.json_import import read_json, read_jsonl
from contacts_cli.io.rows import ImportFileError, ParsedRow, import_chunks
from contacts_cli.io.text import open_text
from contacts_cli.io.vcard_import import read_vcards

__all__ = [
    "FORMATS",
    "OUR_COLUMNS",
    "Format",
    "ImportFileError",
    "ParsedRow",
    "export_contacts",
    "format_from_content",
    "format_from_name",
    "guess_format",
    "import_chunks",
    "open_text",
    "parse_format",
    "read_contacts",
    "read_csv",
    "read_json",
    "read_jsonl",
    "read_vcards",
    "write_csv",
    "write_json",
    "write_jsonl",
    "write_vcards",
]
