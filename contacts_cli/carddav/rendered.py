"""Text made from a contact, made once and remembered: the card itself, and its response in
a listing or a report, so repeated listings and multigets do not build them again.

A :class:`Remembered` maps a contact (plus the key parts the text also depends on: the vCard
version, or the user and the properties asked for) to a text. Making the text must be a pure
function of the contact and those parts, and a contact is an immutable value, so a remembered
text is served only for a contact *equal* to the one it was made from (the same object, as
the user's actor hands out, is the cheap case). The contact's id and version only find the
candidate; equality decides, so two users' contacts with the same id, or a card deleted and
created again at the same version, never get each other's text.

Each keeps texts up to a number of characters, the oldest dropped first (a large card with a
photo, or a listing asking for a thousand properties, is not kept). Everything runs on the
event loop's thread, so the dicts need no lock.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from contacts_cli.carddav.vcard import render_card
from contacts_cli.domain import Contact


class Remembered:
    """Texts made from contacts, by (contact, parts), at most ``max_chars`` characters of
    them in all (a text over a hundredth of that is made every time, never kept)."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.chars = 0
        self._texts: dict[tuple[str, int, Hashable], tuple[Contact, str]] = {}

    def get(self, contact: Contact, parts: Hashable, make: Callable[[], str]) -> str:
        """The text ``make()`` makes for ``contact`` and ``parts``, made at most once while
        it is remembered."""
        key = (contact.id, contact.version, parts)
        hit = self._texts.get(key)
        if hit is not None and (hit[0] is contact or hit[0] == contact):
            return hit[1]
        text = make()
        if len(text) * 100 > self.max_chars:
            return text
        if hit is not None:
            self._drop(key)
        while self._texts and self.chars + len(text) > self.max_chars:
            self._drop(next(iter(self._texts)))
        self._texts[key] = (contact, text)
        self.chars += len(text)
        return text

    def _drop(self, key: tuple[str, int, Hashable]) -> None:
        self.chars -= len(self._texts.pop(key)[1])

    def __len__(self) -> int:
        return len(self._texts)

    def remembered(self) -> list[tuple[str, int, Hashable]]:
        """The keys (contact id, contact version, parts) of the texts kept, oldest first."""
        return list(self._texts)

    def clear(self) -> None:
        self._texts.clear()
        self.chars = 0


CARDS = Remembered(8_000_000)
"""Card texts: some 25,000 cards of 300 characters."""
RESPONSES = Remembered(12_000_000)
"""A card's ``DAV:response`` in a multistatus, by (request kind, user, properties asked for,
vCard version): some 20,000 listing responses of 200 characters and 20,000 multiget ones of
400 (a card's properties are functions of its contact and user alone)."""


def card_text(contact: Contact, version: str) -> str:
    """The contact as a vCard ``version``, rendered at most once while it is remembered."""
    return CARDS.get(contact, version, lambda: render_card(contact, version))


def forget_all() -> None:
    """Drop every remembered text (for tests and measurements of cold rendering)."""
    CARDS.clear()
    RESPONSES.clear()
