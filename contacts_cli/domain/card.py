"""The vCard an address-book client stored for a contact, kept beside the model's fields.

A contact has nine fields; a vCard has many more properties (PHOTO, several addresses,
TEL and EMAIL types, X- properties, ...). A client that stores a card must get it back, so
the contact keeps the card's content lines as the client wrote them (unfolded), each marked
with the model field it fed (``field``, ``""`` for a property the model has no field for)
and the value it gave that field (``derived``, normalised as the field holds it).

The model stays the truth for its own fields: a line that fed a field is served again only
while the field still holds what the line gave it (see ``contacts_cli.carddav.vcard``); a
change made through the CLI or REST replaces it. The domain knows no vCard syntax: it only
keeps the lines, checks their shape (:func:`~contacts_cli.domain.validation.validate_card`)
and journals them (``ContactCreated``/``ContactUpdated`` version 2 carry a ``card``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CARD_VERSIONS: tuple[str, ...] = ("3.0", "4.0")
"""The vCard versions a card may be written in (RFC 2426 and RFC 6350)."""


@dataclass(frozen=True, slots=True)
class CardLine:
    """One content line (``group.NAME;params:value``, unfolded) and the field it fed."""

    field: str
    derived: tuple[str, ...]
    line: str


@dataclass(frozen=True, slots=True)
class Card:
    """The content lines of one stored vCard, in the client's order, minus BEGIN, END,
    VERSION and REV (which are written anew whenever the card is served)."""

    version: str
    lines: tuple[CardLine, ...]

    def size(self) -> int:
        """Characters held, the measure the card size limit is checked against."""
        return sum(len(cl.line) + sum(map(len, cl.derived)) for cl in self.lines)


def card_to_json(card: Card) -> dict[str, Any]:
    """``{"version": "4.0", "lines": [[field, [derived...], line], ...]}``"""
    return {
        "version": card.version,
        "lines": [[cl.field, list(cl.derived), cl.line] for cl in card.lines],
    }


def card_from_json(data: Mapping[str, Any]) -> Card:
    """Inverse of :func:`card_to_json`; a payload of another shape raises ``ValueError``."""
    if not isinstance(data, Mapping):
        raise ValueError("a card must be an object")
    version = data.get("version")
    lines = data.get("lines")
    if not isinstance(version, str) or not isinstance(lines, list):
        raise ValueError("a card needs a 'version' text and a 'lines' list")
    out: list[CardLine] = []
    for item in lines:
        if not (isinstance(item, list) and len(item) == 3):
            raise ValueError("a card line must be [field, derived, line]")
        field, derived, line = item
        if not (
            isinstance(field, str)
            and isinstance(line, str)
            and isinstance(derived, list)
            and all(isinstance(d, str) for d in derived)
        ):
            raise ValueError("a card line must be [text, [text...], text]")
        out.append(CardLine(field, tuple(derived), line))
    return Card(version, tuple(out))


def card_summary(card: Card | None) -> list[str] | None:
    """The card as a person reads it in a contact's history: its content lines."""
    return None if card is None else [cl.line for cl in card.lines]
