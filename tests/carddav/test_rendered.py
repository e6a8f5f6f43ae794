"""Remembered card texts: a contact gets the text rendered from an equal contact, never one
rendered from another contact that shares its id and version."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import msgspec
import pytest

from contacts_cli.carddav import rendered
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


def test_at_most_max_cards_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rendered, "MAX_CARDS", 3)
    contacts = [Contact(f"c{n}", f"Person {n}", updated_at=AT) for n in range(5)]
    for contact in contacts:
        rendered.card_text(contact, "3.0")
    assert len(rendered._texts) == 3
    assert {key[0] for key in rendered._texts} == {"c2", "c3", "c4"}
