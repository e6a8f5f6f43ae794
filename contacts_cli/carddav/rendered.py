"""Cards rendered once and remembered, so listings and multigets do not render them again.

:func:`card_text` is :func:`~contacts_cli.carddav.vcard.render_card` remembered: rendering is
a pure function of the contact and the vCard version, and a contact is an immutable value, so
a remembered text is served only for a contact *equal* to the one it was rendered from (the
same object, as the user's actor hands out, is the cheap case). The key (contact id, contact
version, vCard version) only finds the candidate; equality decides, so two users' contacts
with the same id, or a card deleted and created again at the same version, never get each
other's text.

At most :data:`MAX_CARDS` texts are kept (about 10 MB of 300-byte cards), the oldest dropped
first. Everything runs on the event loop's thread, so the dict needs no lock.
"""

from __future__ import annotations

from contacts_cli.carddav.vcard import render_card
from contacts_cli.domain import Contact

MAX_CARDS = 20_000

_texts: dict[tuple[str, int, str], tuple[Contact, str]] = {}


def card_text(contact: Contact, version: str) -> str:
    """The contact as a vCard ``version``, rendered at most once while it is remembered."""
    key = (contact.id, contact.version, version)
    hit = _texts.get(key)
    if hit is not None and (hit[0] is contact or hit[0] == contact):
        return hit[1]
    text = render_card(contact, version)
    if len(_texts) >= MAX_CARDS and key not in _texts:
        del _texts[next(iter(_texts))]
    _texts[key] = (contact, text)
    return text


def forget_all() -> None:
    """Drop every remembered text (for tests and measurements of cold rendering)."""
    _texts.clear()
