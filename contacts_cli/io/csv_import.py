"""Streaming CSV reader: our own columns, or Google Contacts / Outlook exports.

The first non-empty record is the header and decides the flavour. Multi-valued cells
use ``;`` in our columns, `` ::: `` in Google's and ``;`` in Outlook's categories.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from contacts_cli.domain import EDITABLE_FIELDS, READ_ONLY_FIELDS
from contacts_cli.domain.model import LIST_FIELDS
from contacts_cli.io.errors import ImportFileError
from contacts_cli.io.rows import ParsedRow
from contacts_cli.io.text import MAX_RECORD_CHARS, Lines, TextSource

OUR_COLUMNS: tuple[str, ...] = EDITABLE_FIELDS
_ALIASES = {"email": "emails", "phone": "phones", "label": "labels"}
_GOOGLE_MARKERS = frozenset(
    {
        "Given Name",
        "Family Name",
        "Group Membership",
        "E-mail 1 - Value",
        "Phone 1 - Value",
        "Organization 1 - Name",
        "Organization Name",
    }
)
_OUTLOOK_MARKERS = frozenset(
    {
        "E-mail Address",
        "E-mail 2 Address",
        "Mobile Phone",
        "Business Phone",
        "Home Phone",
        "Job Title",
        "Categories",
    }
)
_OUTLOOK_PHONES = (
    "Mobile Phone",
    "Primary Phone",
    "Business Phone",
    "Business Phone 2",
    "Home Phone",
    "Home Phone 2",
    "Company Main Phone",
    "Other Phone",
    "Car Phone",
)
_OUTLOOK_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2,4})$")

Mapper = Callable[[list[str]], dict[str, Any]]
"""A record (its cells in header order, maybe fewer than the header) to raw contact fields."""


def read_csv(stream: TextSource) -> Iterator[ParsedRow]:
    """Yield one :class:`ParsedRow` per record; raises ImportFileError for a bad header.

    A record with a line that is too long or not text, or longer than MAX_RECORD_CHARS in
    all, is rejected naming that line; the records after it are read on.
    """
    lines = Lines(stream)
    feed = _RecordLines(iter(lines))
    peeked: list[str] = []
    for line in feed:
        peeked.append(line)
        if line.strip():
            break
    delimiter = sniff_delimiter(peeked[-1] if peeked else "")
    feed.replay(peeked)
    reader = csv.reader(feed, delimiter=delimiter, strict=True)
    header: list[str] | None = None
    mapper: Mapper | None = None
    while True:
        start = feed.number + 1
        feed.size = 0
        problem: str | None = None
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            message = "unterminated quoted field" if "end of data" in str(exc) else str(exc)
            problem = f"malformed CSV: {message}"
        except _RecordTooLong:
            problem = (f"the record is longer than {MAX_RECORD_CHARS} characters "
                       "(an unclosed quote?)")
        at = start
        if lines.bad and (bad := lines.take_bad(feed.number)) is not None:
            at, problem = bad.number, bad.message
        if problem is not None:
            if header is None:
                raise ImportFileError(at, f"cannot read the CSV header: {problem}")
            yield ParsedRow.failed(at, problem)
            continue
        first = record[0] if record else ""
        if (not first or first.isspace()) and not any(cell.strip() for cell in record):
            continue  # a blank record (the first cell, usually a name, settles most at once)
        if header is None:
            header = [cell.strip() for cell in record]
            mapper = _mapper_for(header, start)
            continue
        assert mapper is not None
        if len(record) > len(header):
            extra = record[len(header) :]
            if any(cell.strip() for cell in extra):
                yield ParsedRow.failed(
                    start, f"has {len(record)} fields but the header has {len(header)}"
                )
                continue
        yield ParsedRow(start, mapper(record))


class _RecordTooLong(Exception):
    """Raised through ``csv.reader`` by :class:`_RecordLines` (which restarts at the next
    line: the reader resets its state on every call)."""


class _RecordLines:
    """The lines ``csv.reader`` reads, counted, and refused once a record grows too long.

    ``number`` is the last line handed out; the caller resets ``size`` at each record.
    """

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self.number = 0
        self.size = 0

    def replay(self, lines: list[str]) -> None:
        """Hand ``lines`` (already read and counted) out again first."""
        self._lines = itertools.chain(lines, self._lines)
        self.number -= len(lines)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.number += 1
        self.size += len(line)
        if self.size > MAX_RECORD_CHARS:
            raise _RecordTooLong
        return line


def sniff_delimiter(header_line: str) -> str:
    """``,`` unless the header line clearly uses ``;`` (European Excel) or tabs."""
    counts = dict.fromkeys(",;\t", 0)
    quoted = False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(counts, key=lambda c: counts[c])
    return best if counts[best] > counts[","] else ","


def _mapper_for(header: Sequence[str], line: int) -> Mapper:
    names = set(header)
    if names & _GOOGLE_MARKERS:
        return _by_name(header, _google)
    if names & _OUTLOOK_MARKERS:
        return _by_name(header, _outlook)
    return _ours(header, line)


def _by_name(header: Sequence[str], mapper: Callable[[dict[str, str]], dict[str, Any]]) -> Mapper:
    def by_name(record: list[str]) -> dict[str, Any]:
        return mapper(dict(zip(header, record, strict=False)))

    return by_name


def _ours(header: Sequence[str], line: int) -> Mapper:
    columns: dict[str, str | None] = {}
    for cell in header:
        key = cell.casefold()
        field = _ALIASES.get(key, key)
        if not field or field in READ_ONLY_FIELDS:
            columns[cell] = None
        elif field in EDITABLE_FIELDS:
            if field in columns.values():
                raise ImportFileError(line, f"column {cell!r} appears twice")
            columns[cell] = field
        else:
            raise ImportFileError(
                line,
                f"unknown column {cell!r}; expected our columns ({','.join(OUR_COLUMNS)}) "
                "or a Google Contacts or Outlook CSV export",
            )
    if "name" not in columns.values():
        raise ImportFileError(line, "the header has no 'name' column")

    # A header cell named twice keeps its last position, as a dict of the cells would.
    position = {cell: index for index, cell in enumerate(header)}
    plan = sorted((position[cell], field, field in LIST_FIELDS)
                  for cell, field in columns.items() if field is not None)

    def mapper(record: list[str]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        width = len(record)
        for index, field, is_list in plan:
            if index >= width:
                break
            value = record[index]
            if not value or value.isspace():
                continue
            if not is_list:
                data[field] = value
            elif ";" in value:
                data[field] = _split(value, ";")
            else:
                data[field] = [value.strip()]
        data.setdefault("name", "")
        return data

    return mapper


def _split(value: str, separator: str) -> list[str]:
    return [item.strip() for item in value.split(separator) if item.strip()]


def _get(cells: dict[str, str], *names: str) -> str:
    for name in names:
        value = cells.get(name, "").strip()
        if value:
            return value
    return ""


def _joined(cells: dict[str, str], *names: str, sep: str = " ") -> str:
    return sep.join(v for v in (cells.get(n, "").strip() for n in names) if v)


def _numbered(cells: dict[str, str], pattern: re.Pattern[str]) -> list[str]:
    values: list[str] = []
    for name, value in cells.items():
        if pattern.fullmatch(name):
            values += _split(value, ":::")
    return values


def _finish(data: dict[str, Any]) -> dict[str, Any]:
    """Drop empty values; fall back to company or an email when a contact has no name."""
    if not data.get("name"):
        data["name"] = (
            data.get("company")
            or next(iter(data.get("emails") or []), "")
            or next(iter(data.get("phones") or []), "")
        )
    return {k: v for k, v in data.items() if v or k == "name"}


_GOOGLE_EMAIL = re.compile(r"E-mail \d+ - Value")
_GOOGLE_PHONE = re.compile(r"Phone \d+ - Value")


def _google(cells: dict[str, str]) -> dict[str, Any]:
    address = _get(cells, "Address 1 - Formatted") or _joined(
        cells,
        "Address 1 - Street",
        "Address 1 - City",
        "Address 1 - Region",
        "Address 1 - Postal Code",
        "Address 1 - Country",
        sep=", ",
    )
    groups = _split(_get(cells, "Group Membership", "Labels"), ":::")
    return _finish(
        {
            "name": _get(cells, "Name")
            or _joined(
                cells,
                "Given Name",
                "First Name",
                "Additional Name",
                "Middle Name",
                "Family Name",
                "Last Name",
            ),
            "emails": _numbered(cells, _GOOGLE_EMAIL),
            "phones": _numbered(cells, _GOOGLE_PHONE),
            "company": _get(cells, "Organization 1 - Name", "Organization Name"),
            "title": _get(cells, "Organization 1 - Title", "Organization Title"),
            "address": address,
            "birthday": _get(cells, "Birthday"),
            "notes": _get(cells, "Notes"),
            "labels": [g for g in groups if not g.startswith("*")],
        }
    )


def _outlook(cells: dict[str, str]) -> dict[str, Any]:
    address = _joined(
        cells,
        "Home Street",
        "Home City",
        "Home State",
        "Home Postal Code",
        "Home Country/Region",
        sep=", ",
    ) or _joined(
        cells,
        "Business Street",
        "Business City",
        "Business State",
        "Business Postal Code",
        "Business Country/Region",
        sep=", ",
    )
    return _finish(
        {
            "name": _joined(cells, "First Name", "Middle Name", "Last Name")
            or _get(cells, "Name", "Display Name"),
            "emails": [
                v
                for v in (
                    _get(cells, n)
                    for n in ("E-mail Address", "E-mail 2 Address", "E-mail 3 Address")
                )
                if v
            ],
            "phones": [v for v in (_get(cells, n) for n in _OUTLOOK_PHONES) if v],
            "company": _get(cells, "Company"),
            "title": _get(cells, "Job Title"),
            "address": address,
            "birthday": _outlook_date(_get(cells, "Birthday")),
            "notes": _get(cells, "Notes"),
            "labels": _split(_get(cells, "Categories"), ";"),
        }
    )


def _outlook_date(value: str) -> str:
    """Outlook writes ``M/D/YYYY`` and ``0/0/00`` for "none"; other text passes through."""
    match = _OUTLOOK_DATE.match(value)
    if not match:
        return value
    month, day, year = (int(g) for g in match.groups())
    if month == 0 or day == 0:
        return ""
    if len(match.group(3)) != 4:
        return value
    return f"{year:04d}-{month:02d}-{day:02d}"
