"""Remembered card texts: a contact gets the text rendered from an equal contact, never one
rendered from another contact that shares its id and version."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime

import msgspec
import pytest

from contacts_cli.carddav import rendered, urls
from contacts_cli.carddav.properties import PROPERTIES, View, evaluate
from contacts_cli.carddav.vcard import render_card
from contacts_cli.domain import Contact

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _empty() -> Iterator[None]:
    rendered.forget_all()
    yield
    rendered.forget_all()


def test_the_text_is_the_rendered_card_in_each_version() -> None:
    ada = Contact("ada", "Ada Lovelace", emails=("ada@example.org",), updated_at=AT)
    for version in ("3.0", "4.0"):
        assert rendered.card_text(ada, version) == render_card(ada, version)
        assert rendered.card_text(ada, version) == render_card(ada, version)
    assert rendered.card_text(ada, "3.0") != rendered.card_text(ada, "4.0")


def test_an_equal_contact_is_served_the_remembered_text(monkeypatch: pytest.MonkeyPatch) -> None:
    ada = Contact("ada", "Ada Lovelace", updated_at=AT)
    first = rendered.card_text(ada, "3.0")
    monkeypatch.setattr(rendered, "render_card", lambda contact, version: "rendered again")
    assert rendered.card_text(msgspec.structs.replace(ada), "3.0") is first


def test_another_contact_with_the_same_id_and_version_is_rendered_afresh() -> None:
    before = Contact("x", "Before Delete", updated_at=AT)
    after = Contact("x", "After Create", updated_at=AT)  # same id, same version 1
    assert "Before" in rendered.card_text(before, "3.0")
    assert "After" in rendered.card_text(after, "3.0")
    assert "Before" not in rendered.card_text(after, "3.0")


def test_the_oldest_texts_go_once_the_characters_are_spent() -> None:
    kept = rendered.Remembered(max_chars=1000)
    contacts = [Contact(f"c{n}", f"Person {n}") for n in range(120)]
    for contact in contacts:
        kept.get(contact, "p", lambda contact=contact: f"{contact.id:>10}")
    assert kept.chars == 1000
    assert [key[0] for key in kept.remembered()] == [c.id for c in contacts[20:]]
    assert kept.get(contacts[0], "p", lambda: "made again") == "made again"
    assert kept.get(contacts[119], "p", lambda: "made again") == "      c119"


def test_a_text_too_large_to_keep_is_made_every_time() -> None:
    kept = rendered.Remembered(max_chars=1000)
    small = Contact("small", "S")
    large = Contact("large", "L")
    assert kept.get(small, "p", lambda: "x" * 10) == "x" * 10
    assert kept.get(large, "p", lambda: "y" * 11) == "y" * 11
    assert kept.get(large, "p", lambda: "made again!") == "made again!"
    assert kept.get(small, "p", lambda: "made again!") == "x" * 10
    assert kept.chars == 10


def test_a_cards_properties_depend_on_its_contact_and_user_alone() -> None:
    """What lets a listing remember a card's response by (contact, user, names): no card
    property may read the book's sequence number (the only other thing a view holds)."""
    ada = Contact("ada", "Ada Lovelace", emails=("ada@example.org",), updated_at=AT)

    def listed(target: urls.Target, sequence_nr: int) -> list[str]:
        view = View(target, "alice", sequence_nr, ada if target.kind == "card" else None)
        found, missing = evaluate(view, list(PROPERTIES))
        return [ET.tostring(e, encoding="unicode") for e in found] + missing

    card = urls.Target("card", "alice", "ada")
    assert listed(card, 1) == listed(card, 987_654)
    book = urls.Target("book", "alice")  # the book's do read it: the check can fail
    assert listed(book, 1) != listed(book, 987_654)
