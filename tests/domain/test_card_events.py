"""Stored vCards in the domain: events version 2 carry them, version 1 journals still replay,
snapshots keep them, and a client-named create or a card update behaves like any other."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from contacts_cli.domain import (
    Card,
    CardLine,
    ContactCreated,
    ContactExists,
    ContactUpdated,
    CreateContact,
    EventSchemaError,
    UpdateContact,
    ValidationError,
    contact_history,
    decide,
    event_from_payload,
    event_to_payload,
    evolve,
    replay,
    state_from_snapshot,
    state_to_snapshot,
)
from contacts_cli.domain.events import event_to_encodable
from tests.domain.conftest import T0

CARD = Card("4.0", (
    CardLine("name", ("Ada Lovelace",), "FN:Ada Lovelace"),
    CardLine("emails", ("ada@example.org",), "EMAIL;TYPE=work;PREF=1:ada@example.org"),
    CardLine("", (), "PHOTO:data:image/png;base64,iVBORw0KGgo="),
    CardLine("", (), "X-SPOUSE:William"),
))


def never() -> str:
    raise AssertionError("a client-named create draws no id")


def test_a_card_travels_through_the_journal_payload() -> None:
    created = decide(replay([]), CreateContact({"name": "Ada Lovelace",
                                                "emails": ["ada@example.org"]},
                                               card=CARD, contact_id="ada-1"), T0, never)
    assert created[0].contact_id == "ada-1"
    for event in [*created, ContactUpdated("ada-1", {"card": CARD, "title": "Countess"}, T0)]:
        name, version, payload = event_to_payload(event)
        assert version == 2
        stored = json.loads(json.dumps(payload))
        assert event_from_payload(name, version, stored) == event
        assert json.dumps(event_to_encodable(event)[2]) == json.dumps(payload)


def test_version_1_events_upcast_and_a_card_in_one_is_refused() -> None:
    v1 = {"id": "c1", "at": T0.isoformat(), "fields": {"name": "Old", "emails": []}}
    event = event_from_payload("ContactCreated", 1, v1)
    assert isinstance(event, ContactCreated) and "card" not in event.fields
    forged = {**v1, "fields": {"name": "Old", "card": {"version": "4.0", "lines": []}}}
    with pytest.raises(EventSchemaError, match=r"version 1 payload cannot carry fields\.card"):
        event_from_payload("ContactCreated", 1, forged)
    update = {"id": "c1", "at": T0.isoformat(), "changes": {"title": "x"}}
    assert event_from_payload("ContactUpdated", 1, update) == ContactUpdated(
        "c1", {"title": "x"}, T0)


def test_the_card_is_kept_by_updates_that_do_not_name_it_and_by_snapshots() -> None:
    state = replay([])
    for event in decide(state, CreateContact({"name": "Ada Lovelace"}, card=CARD,
                                             contact_id="ada-1"), T0, never):
        evolve(state, event)
    for event in decide(state, UpdateContact("ada-1", {"title": "Countess"}), T0, never):
        evolve(state, event)
    contact = state.get("ada-1")
    assert contact is not None and contact.card == CARD and contact.version == 2
    assert decide(state, UpdateContact("ada-1", {}, card=CARD), T0, never) == []  # no change
    loaded = state_from_snapshot(json.loads(json.dumps(state_to_snapshot(state))))
    assert loaded == state and loaded.get("ada-1") == contact


def test_a_client_named_create_refuses_a_taken_or_bad_id() -> None:
    state = replay([ContactCreated("ada-1", {"name": "Ada"}, T0)])
    with pytest.raises(ContactExists, match="ada-1"):
        decide(state, CreateContact({"name": "Ada"}, contact_id="ada-1"), T0, never)
    for bad in ("", "..", "a/b", "x" * 201, "a b"):
        with pytest.raises(ValidationError, match="id: must be"):
            decide(state, CreateContact({"name": "Ada"}, contact_id=bad), T0, never)


def test_a_malformed_card_is_refused_with_every_problem_named() -> None:
    bad = Card("2.1", (CardLine("nickname", (), "NICKNAME:x"), CardLine("", (), "no colon"),
                       CardLine("", (), "NOTE:a\nb")))
    with pytest.raises(ValidationError) as caught:
        decide(replay([]), CreateContact({"name": "A"}, card=bad), T0, lambda: "c1")
    fields = [e.field for e in caught.value.errors]
    assert fields == ["card.version", "card.lines[0]", "card.lines[1]", "card.lines[2]"]
    huge = Card("4.0", (CardLine("", (), "PHOTO:" + "A" * (1024 * 1024)),))
    with pytest.raises(ValidationError, match="larger than"):
        decide(replay([]), CreateContact({"name": "A"}, card=huge), T0, lambda: "c1")


def test_history_shows_a_card_change_as_its_lines() -> None:
    events = [ContactCreated("c1", {"name": "Ada", "card": CARD}, T0),
              ContactUpdated("c1", {"card": None}, T0 + timedelta(seconds=1))]
    entries = contact_history("c1", [(e.at, e) for e in events])
    assert entries[0].changes["card"] == [line.line for line in CARD.lines]
    assert entries[1].changes["card"] is None
