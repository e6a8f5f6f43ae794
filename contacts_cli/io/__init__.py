"""Streaming import and export of contacts: CSV (ours, Google, Outlook), vCard, JSON (Lines).

Readers take a text stream and yield :class:`ParsedRow` (1-based start line, raw fields or
parse errors) without loading the whole file; the domain validates the fields. Open a file
with :func:`open_file` and :func:`open_text`: then a byte that is not text, a line that is
too long or JSON nested too deep is a line-numbered reject, and what stops a read raises
an error derived from :class:`ContactsIOError`.
"""

from contacts_cli.io.bounded_json import MAX_JSON_DEPTH, loads_bounded
from contacts_cli.io.csv_import import OUR_COLUMNS, read_csv
from contacts_cli.io.decoding import DecodedText, open_file, open_text
from contacts_cli.io.errors import (
    ContactsIOError,
    ImportFileError,
    JsonTooDeep,
    UnreadableFileError,
)
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
from contacts_cli.io.rows import ParsedRow, import_chunks
from contacts_cli.io.text import MAX_LINE_CHARS, MAX_RECORD_CHARS
from contacts_cli.io.vcard_import import read_vcards

__all__ = [
    "FORMATS",
    "MAX_JSON_DEPTH",
    "MAX_LINE_CHARS",
    "MAX_RECORD_CHARS",
    "OUR_COLUMNS",
    "ContactsIOError",
    "DecodedText",
    "Format",
    "ImportFileError",
    "JsonTooDeep",
    "ParsedRow",
    "UnreadableFileError",
    "export_contacts",
    "format_from_content",
    "format_from_name",
    "guess_format",
    "import_chunks",
    "loads_bounded",
    "open_file",
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
