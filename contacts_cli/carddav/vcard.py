"""vCard 3.0 and 4.0 in and out: a client's card becomes the model's fields plus a stored
:class:`~contacts_cli.domain.Card`; a contact becomes a card in the version asked for.

In: the card is cut into content lines by vobject's line parser (``getLogicalLines``,
``parseLine``; its object model is not used: it decodes values lossily and drops part of a
4.0 ``data:`` URI). Each line is kept as written and marked with the model field it feeds
(FN, N -> name; EMAIL -> emails; TEL -> phones; ORG -> company; TITLE; ADR -> address;
BDAY -> birthday; NOTE -> notes; CATEGORIES -> labels). A value the domain would refuse
(a TEL that is no phone number, a 21st email, an over-long note) feeds no field: its line
is kept as a property the model has no field for, so nothing a client stores is lost.

Out: the stored lines in the client's order, each one that fed a field only while the field
still holds what it gave (a change made through the CLI or REST replaces it), then lines for
the model's values no stored line shows, UID if the card had none, and REV from the
contact's last change. A card stored in the other version is converted line by line
(:mod:`contacts_cli.carddav.vcard_versions`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from vobject.base import ParseError, getLogicalLines, parseLine
from vobject.vcard import splitFields, stringToTextValues

from contacts_cli.carddav.vcard_versions import convert_line, fold, property_name
from contacts_cli.domain import (
    CARD_VERSIONS,
    Card,
    CardLine,
    Contact,
    ValidationError,
    normalise_birthday,
    normalise_email,
    normalise_phone,
    validate_patch,
)
from contacts_cli.domain.validation import MAX_ITEMS

MEDIA_TYPE = "text/vcard"
CONTENT_TYPE = "text/vcard; charset=utf-8"
DEFAULT_VERSION = "3.0"
"""What a client that names no version gets (RFC 6352 10.4: address-data defaults to 3.0)."""
PRODID = "-//contacts-actors//CardDAV//EN"
UNNAMED = "Unnamed"

_WHOLE = frozenset(("name", "notes"))
_UNSTORABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")
"""Control characters (a tab aside) and lone surrogates: no text field may hold them."""


class CardError(ValueError):
    """A card that cannot be stored; the message says what is wrong and where.

    ``precondition`` is the CardDAV precondition it fails (RFC 6352 6.3.2.1)."""

    def __init__(self, message: str, precondition: str = "valid-address-data") -> None:
        super().__init__(message)
        self.precondition = precondition


@dataclass(frozen=True, slots=True)
class ParsedCard:
    """A client's card as the domain takes it: the fields of the contact and the card."""

    fields: dict[str, Any]
    card: Card


@dataclass(frozen=True, slots=True)
class _Property:
    line: str
    name: str
    params: list[list[str]]
    value: str
    number: int

    def param(self, name: str) -> list[str]:
        return [v for p in self.params if p[0].upper() == name for v in p[1:]]


# -- in ------------------------------------------------------------------------------------


def parse_card(text: str, *, region: str | None = None) -> ParsedCard:
    """The fields and card of one vCard 3.0 or 4.0; raises :class:`CardError`."""
    version, properties = _properties(text)
    mapper = _Mapper(region)
    marks = [mapper.take(prop) for prop in properties]
    fields = mapper.fields()
    lines = tuple(  # every FN, N and NOTE line stands for the field's final value
        CardLine(field, (fields[field],) if field in _WHOLE else derived, prop.line)
        for prop, (field, derived) in zip(properties, marks, strict=True)
    )
    return ParsedCard(fields, Card(version, lines))


def _properties(text: str) -> tuple[str, list[_Property]]:
    """The content lines between BEGIN:VCARD and END:VCARD (less VERSION and REV) and the
    card's version; a body that is not exactly one such card raises :class:`CardError`."""
    props: list[_Property] = []
    version: str | None = None
    state = "before"
    for number, line in enumerate(_logical_lines(text), start=1):
        try:
            name, params, value, _ = parseLine(line, number)
        except ParseError:
            raise CardError(
                f"content line {number} is not NAME[;params]:value: {line[:60]!r}"
            ) from None
        name = name.upper()
        if state == "before":
            if name != "BEGIN" or value.strip().upper() != "VCARD":
                raise CardError(f"content line {number}: the body must start with BEGIN:VCARD")
            state = "inside"
        elif state == "after":
            raise CardError(f"content line {number}: text after END:VCARD (one card per resource)")
        elif name == "BEGIN":
            raise CardError(f"content line {number}: a card inside a card")
        elif name == "END":
            state = "after"
        elif name == "VERSION":
            version = value.strip()
        elif name != "REV":
            if bad := _UNSTORABLE.search(line):
                raise CardError(f"content line {number} ({name}) holds the character "
                                f"U+{ord(bad.group()):04X}, which a card may not hold")
            props.append(_Property(line, name, params, value, number))
    if state != "after":
        raise CardError("the card is not closed with END:VCARD")
    if version is None:
        raise CardError("the card has no VERSION")
    if version not in CARD_VERSIONS:
        raise CardError(
            f"vCard {version} is not supported; send {' or '.join(CARD_VERSIONS)}",
            "supported-address-data",
        )
    return version, props


def _logical_lines(text: str) -> Iterator[str]:
    if not text.strip():
        raise CardError("the body is empty")
    try:
        for line, _ in getLogicalLines(io.StringIO(text), allowQP=False):
            yield line
    except ParseError as exc:
        raise CardError(f"the card cannot be read: {exc}") from None


class _Mapper:
    """Decides which model field each property feeds, collecting the fields' values."""

    def __init__(self, region: str | None) -> None:
        self.region = region
        self.values: dict[str, Any] = {}
        self.lists: dict[str, list[str]] = {"emails": [], "phones": [], "labels": []}
        self.note_texts: list[str] = []
        self.fallback_names: list[str] = []

    def take(self, prop: _Property) -> tuple[str, tuple[str, ...]]:
        """``(field, derived)`` for one property; ``("", ())`` for one the model lacks."""
        handler = _HANDLERS.get(prop.name)
        if handler is None:
            return "", ()
        try:
            return handler(self, prop)
        except CardError:
            raise
        except (ValidationError, ValueError):  # a value the domain refuses: kept, unmapped
            return "", ()

    def fields(self) -> dict[str, Any]:
        values = dict(self.values)
        values.update(self.lists)
        if "name" not in values:
            names = [*self.fallback_names, values.get("company"), *self.lists["emails"],
                     *self.lists["phones"]]
            values["name"] = next((n for n in names if n), UNNAMED)
        return values

    def _valid(self, field: str, value: Any) -> Any:
        return validate_patch({field: value}, region=self.region)[field]

    def _single(self, field: str, value: Any) -> tuple[str, tuple[str, ...]]:
        if field in self.values:
            return "", ()
        valid = self._valid(field, value)
        if not valid:
            return "", ()
        self.values[field] = valid
        return field, (valid,)

    def _item(self, field: str, item: str) -> tuple[str, tuple[str, ...]]:
        known = self.lists[field]
        if len(known) >= MAX_ITEMS[field] or item.casefold() in map(str.casefold, known):
            return "", ()
        known.append(item)
        return field, (item,)

    def _FN(self, prop: _Property) -> tuple[str, tuple[str, ...]]:
        text = _text(prop.value)
        if "name" in self.values or not text.strip():
            return "name", ()
        try:
            return self._single("name", text)
        except ValidationError as exc:
            raise CardError(f"content line {prop.number} (FN): {exc}") from None

    def _N(self, prop: _Property) -> tuple[str, tuple[str, ...]]:
        parts = [_flat(p) for p in splitFields(prop.value)]
        ordered = [parts[i] for i in (3, 1, 2, 0, 4) if i < len(parts)]
        self.fallback_names.append(" ".join(p for p in ordered if p))
        return "name", ()

    def _EMAIL(self, prop: _Property) -> tuple[str, tuple[str, ...]]:
        return self._item("emails", normalise_email(_text(prop.value).strip()))

    def _TEL(self, prop: _Property) -> tuple[str, tuple[str, ...]]:
        is_uri = "uri" in _lower(prop.param("VALUE"))
        value = prop.value if is_uri else _text(prop.value).strip()
        if value.lower().startswith("tel:"):
            number, _, options = value[4:].partition(";")
            ext = next((o[4:] for o in options.split(";") if o.lower().startswith("ext=")), "")
            value = f"{number} ext. {ext}" if ext else number
        return self._item("phones", normalise_phone(value, self.region))

    def _CATEGORIES(self, prop: _Property) -> tuple[str, tuple[str, ...]]:
        labels = self._valid("labels", [v for v in stringToTextValues(prop.value) if v.strip()])
        known = self.lists["labels"]
        fresh = [label for label in labels if label.casefold() not in map(str.casefold, known)]
        if not labels or len(known) + len(fresh) > MAX_ITEMS["labels"]:
            return "", ()
        known.extend(fresh)
        return "labels", tuple(labels)

    def _ORG(self, prop: _Property) -> tuple[str, tuple[str, ...]]:
        first = next((p for p in map(_flat, splitFields(prop.value)) if p), "")
        return self._single("company", first)

    def _TITLE(self, prop: _Property) -> tuple[str, tuple[str, ...]]:
        return self._single("title", _text(prop.value))

    def _BDAY(self, prop: _Property) -> tuple[str, tuple[str, ...]]:
        if "text" in _lower(prop.param("VALUE")):
            return "", ()
        return self._single("birthday", normalise_birthday(prop.value.strip().split("T")[0]))

    def _ADR(self, prop: _Property) -> tuple[str, tuple[str, ...]]:
        parts = [_flat(p) for p in splitFields(prop.value)]
        return self._single("address", ", ".join(p for p in parts if p))

    def _NOTE(self, prop: _Property) -> tuple[str, tuple[str, ...]]:
        # The NOTEs feed the notes together (as an import joins them); a NOTE that would
        # make them too long is kept unmapped. ``parse_card`` marks each with the result.
        texts = [*self.note_texts, _text(prop.value)]
        joined = self._valid("notes", "\n\n".join(texts))
        if joined is None:
            return "", ()
        self.note_texts = texts
        self.values["notes"] = joined
        return "notes", ()


_HANDLERS = {
    "FN": _Mapper._FN,
    "N": _Mapper._N,
    "EMAIL": _Mapper._EMAIL,
    "TEL": _Mapper._TEL,
    "CATEGORIES": _Mapper._CATEGORIES,
    "ORG": _Mapper._ORG,
    "TITLE": _Mapper._TITLE,
    "BDAY": _Mapper._BDAY,
    "ADR": _Mapper._ADR,
    "NOTE": _Mapper._NOTE,
}


def _text(value: str) -> str:
    """A TEXT value with its backslash escapes undone (RFC 6350 3.4)."""
    return ",".join(stringToTextValues(value, listSeparator=None) or [""]) if value else ""


def _flat(part: str | list[str]) -> str:
    if isinstance(part, list):
        return ",".join(p.strip() for p in part if p.strip())
    return part.strip()


def _lower(values: list[str]) -> list[str]:
    return [v.lower() for v in values]


# -- out -----------------------------------------------------------------------------------


def render_card(contact: Contact, version: str) -> str:
    """The contact as a vCard ``version`` (3.0 or 4.0), folded, CRLF line ends."""
    lines = ["BEGIN:VCARD", f"VERSION:{version}"]
    card = contact.card
    kept: set[str] = set()
    shown: dict[str, set[str]] = {"name": set(), "emails": set(), "phones": set(),
                                  "labels": set()}
    single_shown: set[str] = set()
    stored_names: set[str] = set()
    if card is not None:
        for item in card.lines:
            name = property_name(item.line)
            stored_names.add(name)
            if not _still_true(contact, item, shown, single_shown):
                continue
            kept.add(name)
            line = item.line if card.version == version else convert_line(
                item.line, card.version, version
            )
            lines.append(line)
    lines += _generated(contact, version, kept, shown, single_shown, stored_names, card)
    lines.append(f"REV:{contact.updated_at.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}")
    lines.append("END:VCARD")
    return "".join(fold(line) + "\r\n" for line in lines)


def _still_true(contact: Contact, item: CardLine, shown: dict[str, set[str]],
                single_shown: set[str]) -> bool:
    """Whether a stored line still says what the model holds (and is not said twice)."""
    if not item.field:
        return True
    if item.field in ("emails", "phones", "labels"):
        present = getattr(contact, item.field)
        used = shown[item.field]
        if not all(d in present and d not in used for d in item.derived):
            return False
        used.update(item.derived)
        return True
    if getattr(contact, item.field) != item.derived[0]:
        return False
    single_shown.add(item.field)
    return True


def _generated(contact: Contact, version: str, kept: set[str], shown: dict[str, set[str]],
               single_shown: set[str], stored_names: set[str], card: Card | None) -> list[str]:
    """Lines for what the model holds that no kept stored line shows."""
    out: list[str] = []
    if card is None:
        out.append(f"PRODID:{PRODID}")
    if "FN" not in kept:
        out.append(f"FN:{escape(contact.name)}")
    if "N" not in kept and (version == "3.0" or card is None or "N" in stored_names):
        out.append(f"N:{_structured_name(contact.name)}")
    out += [f"EMAIL:{escape(e)}" for e in contact.emails if e not in shown["emails"]]
    out += [_tel(p, version) for p in contact.phones if p not in shown["phones"]]
    for field, render in _SINGLE_LINES:
        value = getattr(contact, field)
        if value and field not in single_shown:
            out.append(render(value, version))
    labels = [label for label in contact.labels if label not in shown["labels"]]
    if labels:
        out.append("CATEGORIES:" + ",".join(escape(label) for label in labels))
    if "UID" not in kept:
        out.append(f"UID:{uid_of(contact.id)}")
    return out


def uid_of(contact_id: str) -> str:
    """The UID of a contact without a stored one: the same in 3.0 and 4.0."""
    if len(contact_id) == 36 and contact_id.count("-") == 4:
        return f"urn:uuid:{contact_id}"
    return escape(contact_id)


def escape(text: str) -> str:
    """A TEXT value escaped for a content line (RFC 6350 3.4)."""
    return (text.replace("\\", "\\\\").replace("\n", "\\n").replace(",", "\\,")
            .replace(";", "\\;"))


def _structured_name(name: str) -> str:
    """``N`` from a full name: the last word as family name, the rest as given names."""
    given, _, family = name.rpartition(" ")
    return f"{escape(family)};{escape(given)};;;"


def _tel(phone: str, version: str) -> str:
    number, _, ext = phone.partition(" ext. ")
    if version == "4.0":
        return f"TEL;VALUE=uri:tel:{number}" + (f";ext={ext}" if ext else "")
    return f"TEL:{escape(phone)}"


def _bday(value: str, version: str) -> str:
    if version == "4.0":
        return "BDAY:" + ("--" + value[2:].replace("-", "") if value.startswith("--")
                          else value.replace("-", ""))
    return f"BDAY:{value}"


_SINGLE_LINES = (
    ("company", lambda v, _: f"ORG:{escape(v)}"),
    ("title", lambda v, _: f"TITLE:{escape(v)}"),
    ("address", lambda v, _: f"ADR:;;{escape(v)};;;;"),
    ("birthday", _bday),
    ("notes", lambda v, _: f"NOTE:{escape(v)}"),
)
