"""Streaming exporters: csv (our columns), vCard 4.0, JSON Lines and a JSON array.

Each writes contacts one at a time to a text stream (open files with ``newline=""``)
and returns how many it wrote. Importing an export gives the same contacts back.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC
from typing import Protocol

from contacts_cli.domain import Contact, contact_to_dict
from contacts_cli.io.csv_import import OUR_COLUMNS
from contacts_cli.io.formats import Format

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_EXTENSION = re.compile(r"^(\+\d+) ext\. (\d+)$")
_FOLD_OCTETS = 75


class TextSink(Protocol):
    def write(self, text: str, /) -> int: ...


def write_csv(contacts: Iterable[Contact], out: TextSink) -> int:
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(OUR_COLUMNS)
    count = 0
    for contact in contacts:
        row: list[str] = []
        for name in OUR_COLUMNS:
            value = getattr(contact, name)
            row.append(";".join(value) if isinstance(value, tuple) else value or "")
        writer.writerow(row)
        count += 1
    return count


def write_jsonl(contacts: Iterable[Contact], out: TextSink) -> int:
    count = 0
    for contact in contacts:
        out.write(json.dumps(contact_to_dict(contact), ensure_ascii=False) + "\n")
        count += 1
    return count


def write_json(contacts: Iterable[Contact], out: TextSink) -> int:
    out.write("[")
    count = 0
    for contact in contacts:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(contact_to_dict(contact), ensure_ascii=False))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def write_vcards(contacts: Iterable[Contact], out: TextSink) -> int:
    count = 0
    for contact in contacts:
        for line in vcard_lines(contact):
            out.write(_fold(line) + "\r\n")
        count += 1
    return count


def vcard_lines(contact: Contact) -> list[str]:
    """One contact as unfolded vCard 4.0 content lines (RFC 6350)."""
    uid = f"urn:uuid:{contact.id}" if _UUID.match(contact.id) else _escape(contact.id)
    lines = ["BEGIN:VCARD", "VERSION:4.0", f"UID:{uid}", f"FN:{_escape(contact.name)}"]
    lines += [f"EMAIL:{_escape(email)}" for email in contact.emails]
    lines += [f"TEL;VALUE=uri:{_tel_uri(phone)}" for phone in contact.phones]
    if contact.company:
        lines.append(f"ORG:{_escape(contact.company)}")
    if contact.title:
        lines.append(f"TITLE:{_escape(contact.title)}")
    if contact.address:
        lines.append(f"ADR:;;{_escape(contact.address)};;;;")
    if contact.birthday:
        lines.append(f"BDAY:{_vcard_date(contact.birthday)}")
    if contact.notes:
        lines.append(f"NOTE:{_escape(contact.notes)}")
    if contact.labels:
        lines.append("CATEGORIES:" + ",".join(_escape(label) for label in contact.labels))
    lines.append(f"REV:{contact.updated_at.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}")
    lines.append("END:VCARD")
    return lines


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace(",", "\\,").replace(";", "\\;")


def _vcard_date(birthday: str) -> str:
    """``1980-05-12`` -> ``19800512``; yearless ``--05-12`` -> ``--0512`` (RFC 6350 4.3.1)."""
    if birthday.startswith("--"):
        return "--" + birthday[2:].replace("-", "")
    return birthday.replace("-", "")


def _tel_uri(phone: str) -> str:
    match = _EXTENSION.match(phone)
    return f"tel:{match.group(1)};ext={match.group(2)}" if match else f"tel:{phone}"


def _fold(line: str) -> str:
    """Fold at 75 octets without splitting a UTF-8 character (RFC 6350 3.2)."""
    if len(line.encode()) <= _FOLD_OCTETS:
        return line
    parts: list[str] = []
    current = ""
    size = 0
    limit = _FOLD_OCTETS
    for char in line:
        width = len(char.encode())
        if size + width > limit:
            parts.append(current)
            current, size, limit = "", 0, _FOLD_OCTETS - 1
        current += char
        size += width
    parts.append(current)
    return "\r\n ".join(parts)


WRITERS: dict[Format, Callable[[Iterable[Contact], TextSink], int]] = {
    "csv": write_csv,
    "vcf": write_vcards,
    "jsonl": write_jsonl,
    "json": write_json,
}


def export_contacts(contacts: Iterable[Contact], out: TextSink, format: Format) -> int:
    """Write ``contacts`` in ``format``; returns the number written."""
    return WRITERS[format](contacts, out)
