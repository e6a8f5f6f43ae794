"""Streaming vCard reader (2.1, 3.0, 4.0; many cards per file), parsing card by card.

Cards are cut out of the line stream here, so only one card is in memory at a time and
an error names the line where the bad card starts; ``vobject`` parses each card.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import vobject

from contacts_cli.io.rows import ParsedRow
from contacts_cli.io.text import MAX_RECORD_CHARS, BadLine, Lines, TextSource

MAX_CARD_CHARS = MAX_RECORD_CHARS
"""A card beyond this (say, a huge photo) is reported instead of parsed."""
_AT_LINE = re.compile(r"^At line \d+: ")
_OUTSIDE = "text outside a vCard (BEGIN:VCARD...)"


def read_vcards(stream: TextSource) -> Iterator[ParsedRow]:
    """Yield one :class:`ParsedRow` per card; text outside cards is reported, not ignored.

    A card with a line that is too long or not text is rejected naming that line.
    """
    lines = Lines(stream)
    card: list[str] = []
    size = 0
    start = 0
    depth = 0
    stray_start: int | None = None
    for number, line in enumerate(lines, start=1):
        word = line.rstrip("\r\n \t").upper()
        if depth == 0:
            if word == "BEGIN:VCARD":
                if stray_start is not None:
                    yield ParsedRow.failed(stray_start, _OUTSIDE)
                    stray_start = None
                depth, start, card, size = 1, number, [line], len(line)
            elif not word and lines.bad and (bad := lines.take_bad(number)) is not None:
                if stray_start is not None:
                    yield ParsedRow.failed(stray_start, _OUTSIDE)
                    stray_start = None
                yield ParsedRow.failed(bad.number, bad.message)
            elif word and stray_start is None:
                stray_start = number
            continue
        if size <= MAX_CARD_CHARS:
            card.append(line)
            size += len(line)
            if size > MAX_CARD_CHARS:
                card = []  # keep reading to its END:VCARD, but hold no more of it
        if word == "BEGIN:VCARD":
            depth += 1
        elif word == "END:VCARD":
            depth -= 1
            if depth == 0:
                yield _finish_card(start, card, size, lines.take_bad(number) if lines.bad else None)
                card = []
    if depth:
        bad = lines.take_bad()
        if bad is not None:
            yield ParsedRow.failed(bad.number, bad.message)
        else:
            yield ParsedRow.failed(start, "card is not closed with END:VCARD")
    if stray_start is not None:
        yield ParsedRow.failed(stray_start, _OUTSIDE)


def _finish_card(start: int, card: list[str], size: int, bad: BadLine | None) -> ParsedRow:
    if bad is not None:
        return ParsedRow.failed(bad.number, bad.message)
    if size > MAX_CARD_CHARS:
        return ParsedRow.failed(start, f"card is larger than {MAX_CARD_CHARS} characters")
    return _parse_card(start, "".join(card))


def _parse_card(line: int, text: str) -> ParsedRow:
    try:
        card = vobject.readOne(text, ignoreUnreadable=False)
    except Exception as exc:  # vobject raises assorted errors on malformed input
        # vobject's own line numbers are unreliable, so only the card's start line is given.
        return ParsedRow.failed(line, f"cannot parse vCard: {_AT_LINE.sub('', _short(exc))}")
    try:
        return ParsedRow(line, _card_data(card))
    except Exception as exc:
        return ParsedRow.failed(line, f"cannot read vCard: {_short(exc)}")


def _short(exc: Exception) -> str:
    message = str(exc).strip().splitlines()
    return message[0] if message else type(exc).__name__


def _card_data(card: Any) -> dict[str, Any]:
    children: dict[str, list[Any]] = {}
    for child in card.getChildren():
        children.setdefault(child.name.upper(), []).append(child)

    def texts(name: str) -> list[str]:
        out: list[str] = []
        for child in children.get(name, []):
            value = child.value
            if isinstance(value, list):
                out += [str(v) for v in value if str(v).strip()]
            elif value is not None and str(value).strip():
                out.append(str(value).strip())
        return out

    def first(name: str) -> str:
        values = texts(name)
        return values[0] if values else ""

    company = ""
    for org in children.get("ORG", []):
        parts = org.value if isinstance(org.value, list) else [org.value]
        company = next((str(p).strip() for p in parts if str(p).strip()), "")
        if company:
            break
    data: dict[str, Any] = {
        "name": first("FN") or _structured_name(children.get("N", [])),
        "emails": texts("EMAIL"),
        "phones": [_phone(p) for p in texts("TEL")],
        "company": company,
        "title": first("TITLE"),
        "address": _address(children.get("ADR", [])),
        "birthday": first("BDAY").split("T")[0],
        "notes": "\n\n".join(texts("NOTE")),
        "labels": texts("CATEGORIES"),
    }
    if not data["name"]:
        data["name"] = company or next(iter(data["emails"]), "") or next(iter(data["phones"]), "")
    return {k: v for k, v in data.items() if v or k == "name"}


def _structured_name(items: list[Any]) -> str:
    for item in items:
        value = item.value
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(";")]
            ordered = [parts[i] for i in (3, 1, 2, 0, 4) if i < len(parts)]
        else:
            ordered = [
                _flat(getattr(value, a, ""))
                for a in ("prefix", "given", "additional", "family", "suffix")
            ]
        name = " ".join(p for p in ordered if p)
        if name:
            return name
    return ""


def _address(items: list[Any]) -> str:
    for item in items:
        value = item.value
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(";")]
        else:
            parts = [
                _flat(getattr(value, a, ""))
                for a in ("box", "extended", "street", "city", "region", "code", "country")
            ]
        text = ", ".join(p for p in parts if p)
        if text:
            return text
    return ""


def _flat(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(v).strip() for v in value if str(v).strip())
    return str(value or "").strip()


def _phone(value: str) -> str:
    """``tel:`` URIs (vCard 4.0) become plain numbers, keeping an ``;ext=`` extension."""
    if value.lower().startswith("tel:"):
        number, _, params = value[4:].partition(";")
        for param in params.split(";"):
            key, _, ext = param.partition("=")
            if key.lower() == "ext" and ext:
                return f"{number} ext. {ext}"
        return number
    return value
