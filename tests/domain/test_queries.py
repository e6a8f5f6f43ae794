"""Queries: name order, paging cursors, search syntax, history and as-of."""

from __future__ import annotations

from datetime import datetime

import pytest

from contacts_cli.domain import (
    ContactCreated,
    ContactNotFound,
    ContactRemoved,
    ContactsState,
    ContactUpdated,
    Event,
    ValidationError,
    contact_history,
    evolve,
    get_contact,
    list_contacts,
    search_contacts,
    state_as_of,
    validate_new,
)
from tests.domain.conftest import T0, at


def make(*contacts: tuple[str, dict[str, object]]) -> ContactsState:
    state = ContactsState()
    for contact_id, raw in contacts:
        evolve(state, ContactCreated(contact_id, validate_new(raw), T0))
    return state


def names(page_items: list[object]) -> list[str]:
    return [c.name for c in page_items]  # type: ignore[attr-defined]


def test_get() -> None:
    state = make(("a", {"name": "Ada"}))
    assert get_contact(state, "a").name == "Ada"
    with pytest.raises(ContactNotFound):
        get_contact(state, "b")


def test_list_is_sorted_case_insensitively_then_by_id() -> None:
    state = make(
        ("3", {"name": "bob"}),
        ("1", {"name": "Bob"}),
        ("2", {"name": "alice"}),
        ("4", {"name": "Émile"}),
        ("5", {"name": "Carol"}),
    )
    page = list_contacts(state)
    assert [(c.name, c.id) for c in page.items] == [
        ("alice", "2"),
        ("Bob", "1"),
        ("bob", "3"),
        ("Carol", "5"),
        ("Émile", "4"),
    ]
    assert page.next_cursor is None


def test_paging_with_cursors_visits_everything_once() -> None:
    state = make(*((f"id{i:03d}", {"name": f"Name {i % 7}"}) for i in range(40)))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = list_contacts(state, limit=6, cursor=cursor)
        seen += [c.id for c in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 7
    assert sorted(seen) == sorted(c.id for c in state)
    assert seen == [k[1] for k in state.ordered_keys()]


def test_an_exactly_full_last_page_has_no_cursor() -> None:
    state = make(*((f"{i}", {"name": f"N{i}"}) for i in range(4)))
    first = list_contacts(state, limit=2)
    assert first.next_cursor is not None
    second = list_contacts(state, limit=2, cursor=first.next_cursor)
    assert len(second.items) == 2 and second.next_cursor is None


def test_cursor_stays_valid_across_writes() -> None:
    state = make(("a", {"name": "A"}), ("b", {"name": "B"}), ("d", {"name": "D"}))
    page = list_contacts(state, limit=2)
    evolve(state, ContactCreated("c", {"name": "C"}, at(1)))
    evolve(state, ContactRemoved("b", at(2)))
    evolve(state, ContactUpdated("a", {"name": "Z"}, at(3)))
    rest = list_contacts(state, limit=10, cursor=page.next_cursor)
    assert names(rest.items) == ["C", "D", "Z"]
    assert names(list_contacts(state).items) == ["C", "D", "Z"]


def test_renames_back_and_forth_do_not_duplicate() -> None:
    state = make(("a", {"name": "A"}))
    evolve(state, ContactUpdated("a", {"name": "B"}, at(1)))
    evolve(state, ContactUpdated("a", {"name": "A"}, at(2)))
    assert names(list_contacts(state).items) == ["A"]


@pytest.mark.parametrize("limit", [0, -1, 1001, True])
def test_bad_limits(limit: int) -> None:
    with pytest.raises(ValidationError, match="limit"):
        list_contacts(ContactsState(), limit=limit)


@pytest.mark.parametrize("cursor", ["!!!", "bm90IGpzb24", "WzFd"])
def test_bad_cursors(cursor: str) -> None:
    with pytest.raises(ValidationError, match="cursor: is not a valid cursor"):
        list_contacts(ContactsState(), cursor=cursor)


SEARCH = make(
    (
        "1",
        {
            "name": "Ada Lovelace",
            "emails": ["ada@engine.org"],
            "phones": ["+44 20 7946 0958"],
            "company": "Analytical Engines",
            "labels": ["math", "Friends"],
        },
    ),
    (
        "2",
        {
            "name": "Charles Babbage",
            "emails": ["cb@engine.org"],
            "phones": ["(202) 555-0123"],
            "notes": "Met Ada in 1833",
            "labels": ["work"],
        },
    ),
    (
        "3",
        {
            "name": "Grace Hopper",
            "emails": ["grace@navy.mil"],
            "title": "Rear Admiral",
            "address": "Arlington, Virginia",
        },
    ),
    ("4", {"name": "Zoë Ünal", "company": "Straße GmbH"}),
    ("5", {"name": "Conan O'Brien", "notes": "see http://o.example"}),
)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ada", ["Ada Lovelace", "Charles Babbage"]),
        ("ADA engine", ["Ada Lovelace", "Charles Babbage"]),
        ("name:ada", ["Ada Lovelace"]),
        ("email:engine.org notes:1833", ["Charles Babbage"]),
        ("label:friends", ["Ada Lovelace"]),
        ("phone:2025550123", ["Charles Babbage"]),
        ("phone:555-0123", ["Charles Babbage"]),
        ("202 555", ["Charles Babbage"]),
        ("7946", ["Ada Lovelace"]),
        ("phone:ada", []),
        ('"rear admiral"', ["Grace Hopper"]),
        ('title:"rear admiral" address:virginia', ["Grace Hopper"]),
        ("zoë", ["Zoë Ünal"]),
        ("STRASSE", ["Zoë Ünal"]),
        ("org:gmbh", ["Zoë Ünal"]),
        ("nobody", []),
        ("", ["Ada Lovelace", "Charles Babbage", "Conan O'Brien", "Grace Hopper", "Zoë Ünal"]),
        ("12:30", []),
        ("o'brien", ["Conan O'Brien"]),
        ('"http://o.example"', ["Conan O'Brien"]),
        ('notes:"http://o.example"', ["Conan O'Brien"]),
        ('name:"charles babbage"', ["Charles Babbage"]),
        ('"name:charles"', []),
    ],
)
def test_search(query: str, expected: list[str]) -> None:
    assert names(search_contacts(SEARCH, query).items) == expected


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("colour:red", "unknown field 'colour'"),
        ("name:", "no term"),
        ('name:""', "no term"),
        ('"open', "unbalanced"),
        ("http://x", "unknown field 'http'"),
    ],
)
def test_search_syntax_errors(query: str, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment) as info:
        search_contacts(SEARCH, query)
    assert info.value.errors[0].field == "q"


def test_search_pages() -> None:
    state = make(
        *((f"{i:02d}", {"name": f"Match {i:02d}" if i % 3 else f"Other {i}"}) for i in range(30))
    )
    first = search_contacts(state, "match", limit=15)
    assert len(first.items) == 15 and first.next_cursor
    second = search_contacts(state, "match", limit=15, cursor=first.next_cursor)
    assert len(second.items) == 5 and second.next_cursor is None
    assert {c.id for c in first.items}.isdisjoint(c.id for c in second.items)


def journal() -> list[tuple[datetime, Event]]:
    return [
        (at(0), ContactCreated("a", validate_new({"name": "Ada"}), at(0))),
        (at(1), ContactCreated("b", validate_new({"name": "Bob"}), at(1))),
        (at(2), ContactUpdated("a", {"company": "C", "title": None}, at(2))),
        (at(3), ContactRemoved("a", at(3))),
    ]


def test_history_of_one_contact_even_after_removal() -> None:
    entries = contact_history("a", journal())
    assert [(e.at, e.type, e.version) for e in entries] == [
        (at(0), "ContactCreated", 1),
        (at(2), "ContactUpdated", 2),
        (at(3), "ContactRemoved", 3),
    ]
    assert entries[0].changes["name"] == "Ada"
    assert entries[0].changes["emails"] == []
    assert entries[1].changes == {"company": "C", "title": None}
    assert entries[0].contact is not None and entries[0].contact.company is None
    assert entries[1].contact is not None
    assert (entries[1].contact.company, entries[1].contact.version) == ("C", 2)
    assert entries[1].contact.updated_at == at(2)
    assert entries[2].contact is None
    assert entries[1].to_dict()["contact"]["company"] == "C"
    assert entries[2].to_dict() == {
        "at": "2026-01-01T12:00:03.000000+00:00",
        "type": "ContactRemoved",
        "version": 3,
        "changes": {},
        "contact": None,
    }
    with pytest.raises(ContactNotFound):
        contact_history("zzz", journal())


def test_state_as_of() -> None:
    assert [c.name for c in state_as_of(journal(), at(0))] == ["Ada"]
    past = state_as_of(journal(), at(2))
    ada = past.get("a")
    assert ada is not None and (ada.company, ada.version) == ("C", 2)
    assert [c.id for c in state_as_of(journal(), at(3))] == ["b"]
    assert len(state_as_of(journal(), at(-1))) == 0


def test_search_sees_updates_and_removals() -> None:
    state = make(("a", {"name": "Ada", "notes": "old words"}), ("b", {"name": "Bob"}))
    assert names(search_contacts(state, "old").items) == ["Ada"]
    evolve(state, ContactUpdated("a", {"notes": "fresh words"}, at(1)))
    assert names(search_contacts(state, "old").items) == []
    assert names(search_contacts(state, "fresh").items) == ["Ada"]
    evolve(state, ContactRemoved("a", at(2)))
    assert names(search_contacts(state, "fresh").items) == []
    assert names(search_contacts(state, "b").items) == ["Bob"]


def test_a_term_does_not_match_across_two_values() -> None:
    state = make(
        ("a", {"name": "A", "labels": ["ab", "cd"], "phones": ["+12025550123", "+12025550199"]})
    )
    assert names(search_contacts(state, "label:bc").items) == []
    assert names(search_contacts(state, "phone:01231").items) == []
    assert names(search_contacts(state, "phone:0199").items) == ["A"]


def test_copy_is_independent() -> None:
    state = make(("a", {"name": "A", "emails": ["a@x.org"]}))
    other = state.copy()
    evolve(other, ContactUpdated("a", {"emails": ("b@x.org",), "name": "B"}, at(1)))
    evolve(other, ContactCreated("c", {"name": "C"}, at(1)))
    assert state.ids_with_email("a@x.org") == ["a"]
    assert names(list_contacts(state).items) == ["A"]
    assert names(list_contacts(other).items) == ["B", "C"]
