"""decide/evolve: events carry ids and times, replays are identical, merges and conflicts."""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections.abc import Callable
from datetime import datetime

import pytest

from contacts_cli.domain import (
    ContactCreated,
    ContactNotFound,
    ContactRemoved,
    ContactsState,
    ContactUpdated,
    CreateContact,
    Event,
    NewIdCollision,
    RemoveContact,
    UpdateContact,
    ValidationError,
    VersionConflict,
    contact_to_dict,
    decide,
    event_from_payload,
    event_to_payload,
    evolve,
    replay,
    search_contacts,
    state_from_snapshot,
    state_to_snapshot,
)
from contacts_cli.domain.decide import Command
from contacts_cli.domain.state import pack_column, unpack_column
from tests.domain.conftest import T0, at, ids


def run(
    state: ContactsState, command: Command, now: datetime, new_id: Callable[[], str]
) -> list[Event]:
    events = decide(state, command, now, new_id)
    for event in events:
        evolve(state, event)
    return events


def test_create_stores_the_generated_id_and_time_in_the_event() -> None:
    state = ContactsState()
    [event] = run(state, CreateContact({"name": "Ada", "emails": ["ADA@x.org"]}), T0, ids())
    assert isinstance(event, ContactCreated)
    assert event.contact_id == "id-00001"
    assert event.at == T0
    contact = state.get("id-00001")
    assert contact is not None
    assert contact.name == "Ada"
    assert contact.emails == ("ADA@x.org",)
    assert (contact.created_at, contact.updated_at, contact.version) == (T0, T0, 1)


def test_replay_gives_identical_ids_and_state_without_calling_new_id() -> None:
    state = ContactsState()
    log: list[Event] = []
    log += run(state, CreateContact({"name": "Ada"}), at(0), lambda: str(uuid.uuid4()))
    log += run(state, CreateContact({"name": "Bob"}), at(1), lambda: str(uuid.uuid4()))
    first = log[0].contact_id
    log += run(state, UpdateContact(first, {"company": "Analytical"}), at(2), ids())
    log += run(state, RemoveContact(log[1].contact_id), at(3), ids())

    stored = [event_to_payload(e) for e in log]
    for _ in range(2):
        replayed = replay(event_from_payload(t, v, p) for t, v, p in stored)
        assert replayed == state
        assert state_to_snapshot(replayed) == state_to_snapshot(state)
        assert [c.id for c in replayed] == [first]


def test_decide_does_not_change_the_state(new_id: Callable[[], str]) -> None:
    state = ContactsState()
    run(state, CreateContact({"name": "Ada"}), T0, new_id)
    before = state_to_snapshot(state)
    decide(state, CreateContact({"name": "Bob"}), at(1), new_id)
    decide(state, UpdateContact("id-00001", {"name": "Ada L."}), at(1), new_id)
    decide(state, RemoveContact("id-00001"), at(1), new_id)
    assert state_to_snapshot(state) == before


def test_update_is_a_merge_carrying_only_changed_fields(new_id: Callable[[], str]) -> None:
    state = ContactsState()
    run(
        state,
        CreateContact(
            {"name": "Ada", "emails": ["a@x.org"], "company": "C", "title": "T", "notes": "n"}
        ),
        T0,
        new_id,
    )
    [event] = run(
        state,
        UpdateContact("id-00001", {"company": "C", "title": None, "notes": "new", "phones": []}),
        at(5),
        new_id,
    )
    assert isinstance(event, ContactUpdated)
    assert dict(event.changes) == {"title": None, "notes": "new"}
    contact = state.get("id-00001")
    assert contact is not None
    assert (contact.name, contact.emails, contact.company) == ("Ada", ("a@x.org",), "C")
    assert (contact.title, contact.notes) == (None, "new")
    assert (contact.version, contact.created_at, contact.updated_at) == (2, T0, at(5))


def test_update_that_changes_nothing_emits_nothing(new_id: Callable[[], str]) -> None:
    state = ContactsState()
    run(state, CreateContact({"name": "Ada", "emails": ["a@x.org"]}), T0, new_id)
    assert decide(state, UpdateContact("id-00001", {"emails": ["a@x.org"]}), at(1), new_id) == []
    assert decide(state, UpdateContact("id-00001", {}), at(1), new_id) == []


def test_clearing_a_list_and_the_name(new_id: Callable[[], str]) -> None:
    state = ContactsState()
    run(state, CreateContact({"name": "Ada", "labels": ["x"]}), T0, new_id)
    [event] = run(state, UpdateContact("id-00001", {"labels": None}), at(1), new_id)
    assert dict(event.changes) == {"labels": ()}
    with pytest.raises(ValidationError, match="name: cannot be cleared"):
        decide(state, UpdateContact("id-00001", {"name": None}), at(2), new_id)


def test_version_increments_and_stale_versions_conflict(new_id: Callable[[], str]) -> None:
    state = ContactsState()
    run(state, CreateContact({"name": "Ada"}), T0, new_id)
    run(state, UpdateContact("id-00001", {"notes": "1"}, expected_version=1), at(1), new_id)
    run(state, UpdateContact("id-00001", {"notes": "2"}, expected_version=2), at(2), new_id)
    contact = state.get("id-00001")
    assert contact is not None and contact.version == 3
    with pytest.raises(VersionConflict) as info:
        decide(state, UpdateContact("id-00001", {"notes": "lost"}, 2), at(3), new_id)
    assert (info.value.expected, info.value.actual) == (2, 3)
    with pytest.raises(VersionConflict):
        decide(state, RemoveContact("id-00001", expected_version=1), at(3), new_id)
    assert run(state, RemoveContact("id-00001", expected_version=3), at(3), new_id) == [
        ContactRemoved("id-00001", at(3))
    ]
    assert "id-00001" not in state


def test_unknown_contacts(new_id: Callable[[], str]) -> None:
    state = ContactsState()
    with pytest.raises(ContactNotFound):
        decide(state, UpdateContact("nope", {"notes": "x"}), T0, new_id)
    with pytest.raises(ContactNotFound):
        decide(state, RemoveContact("nope"), T0, new_id)


def test_naive_now_is_refused(new_id: Callable[[], str]) -> None:
    with pytest.raises(ValueError, match="timezone"):
        decide(ContactsState(), CreateContact({"name": "A"}), datetime(2026, 1, 1), new_id)


def test_taken_ids_are_not_reused() -> None:
    state = ContactsState()
    run(state, CreateContact({"name": "A"}), T0, lambda: "same")
    with pytest.raises(NewIdCollision, match="already taken"):
        decide(state, CreateContact({"name": "B"}), T0, lambda: "same")
    sequence = iter(["same", "other"])
    [event] = decide(state, CreateContact({"name": "B"}), T0, lambda: next(sequence))
    assert event.contact_id == "other"


def test_evolve_refuses_events_that_do_not_fit() -> None:
    state = ContactsState()
    with pytest.raises(ValueError, match="unknown contact"):
        evolve(state, ContactUpdated("x", {"notes": "n"}, T0))
    with pytest.raises(ValueError, match="unknown contact"):
        evolve(state, ContactRemoved("x", T0))
    evolve(state, ContactCreated("x", {"name": "X"}, T0))
    with pytest.raises(ValueError, match="existing contact"):
        evolve(state, ContactCreated("x", {"name": "X"}, T0))


def test_email_index_follows_updates_and_removals(new_id: Callable[[], str]) -> None:
    state = ContactsState()
    run(state, CreateContact({"name": "A", "emails": ["a@x.org"]}), T0, new_id)
    run(state, CreateContact({"name": "B", "emails": ["A@X.org"]}), T0, new_id)
    assert state.ids_with_email("a@X.ORG") == ["id-00001", "id-00002"]
    run(state, UpdateContact("id-00001", {"emails": ["new@x.org"]}), at(1), new_id)
    assert state.ids_with_email("a@x.org") == ["id-00002"]
    assert state.ids_with_email("new@x.org") == ["id-00001"]
    run(state, RemoveContact("id-00002"), at(2), new_id)
    assert state.ids_with_email("a@x.org") == []


def test_snapshot_round_trip_rebuilds_indexes(new_id: Callable[[], str]) -> None:
    state = ContactsState()
    run(
        state,
        CreateContact({"name": "Zed", "emails": ["z@x.org"], "birthday": "--05-12"}),
        T0,
        new_id,
    )
    run(state, CreateContact({"name": "amy", "phones": ["+12025550123"]}), at(1), new_id)
    run(state, UpdateContact("id-00001", {"labels": ["a", "b"]}), at(2), new_id)
    snapshot = json.loads(json.dumps(state_to_snapshot(state)))
    loaded = state_from_snapshot(snapshot)
    assert loaded == state
    assert loaded.ids_with_email("Z@X.ORG") == ["id-00001"]
    assert [k[1] for k in loaded.ordered_keys()] == ["id-00002", "id-00001"]
    # The loaded state keeps evolving exactly like the original.
    more = decide(loaded, UpdateContact("id-00002", {"name": "Amy"}), at(3), new_id)
    for event in more:
        evolve(loaded, event)
        evolve(state, event)
    assert loaded == state
    with pytest.raises(ValueError, match="schema"):
        state_from_snapshot({"schema": 99, "contacts": []})
    assert snapshot["schema"] == 3 and snapshot["id"] == ["id-00001", "id-00002"]
    assert snapshot["version"] == [2, 1] and snapshot["title"] == {"same": None}
    assert snapshot["card"] == {"same": None}
    before_cards = {k: v for k, v in snapshot.items() if k != "card"}
    assert state_from_snapshot({**before_cards, "schema": 2}) == state_from_snapshot(snapshot)
    broken = json.loads(json.dumps(snapshot))
    del broken["name"][0]
    with pytest.raises(ValueError, match="corrupt contacts snapshot"):
        state_from_snapshot(broken)
    twice = {**snapshot, "id": [snapshot["id"][0]] * 2}
    with pytest.raises(ValueError, match="appears twice"):
        state_from_snapshot(twice)


def test_schema_1_snapshots_still_load(new_id: Callable[[], str]) -> None:
    state = ContactsState()
    run(state, CreateContact({"name": "Zed", "emails": ["z@x.org"]}), T0, new_id)
    run(state, CreateContact({"name": "amy", "labels": ["x"]}), at(1), new_id)
    run(state, UpdateContact("id-00001", {"company": "Acme"}), at(2), new_id)
    old = json.loads(json.dumps({"schema": 1, "contacts": [contact_to_dict(c) for c in state]}))
    loaded = state_from_snapshot(old)
    assert loaded == state
    assert loaded.ids_with_email("Z@X.org") == ["id-00001"]
    assert [k[1] for k in loaded.ordered_keys()] == ["id-00002", "id-00001"]
    broken = json.loads(json.dumps(old))
    del broken["contacts"][0]["created_at"]
    with pytest.raises(ValueError, match="corrupt contacts snapshot"):
        state_from_snapshot(broken)
    with pytest.raises(ValueError, match="appears twice"):
        state_from_snapshot({"schema": 1, "contacts": old["contacts"] * 2})


@pytest.mark.parametrize("expected", [0, -1, True, "1"])
def test_expected_version_must_be_a_positive_integer(
    expected: object, new_id: Callable[[], str]
) -> None:
    state = ContactsState()
    run(state, CreateContact({"name": "Ada"}), T0, new_id)
    with pytest.raises(ValidationError, match="expected_version") as info:
        decide(state, UpdateContact("id-00001", {"notes": "x"}, expected), at(1), new_id)  # type: ignore[arg-type]
    assert info.value.to_list() == [
        {"field": "expected_version", "message": "must be a positive integer"}
    ]


@pytest.mark.parametrize("values", [
    [1] * 10, list(range(5, 100)), [0] * 50 + [1] * 50, [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5],
    ["a"] * 3, [None] * 9, [1, "x", 2, 3, 4, 5, 6, 7, 8, 9], [True] * 2 + [1] * 8,
    list(range(10)) + list(range(3, 20)), [], [7], [1.0] + [1] * 9,
])
def test_snapshot_columns_pack_and_unpack_exactly(values: list[object]) -> None:
    packed = json.loads(json.dumps(pack_column(values)))
    unpacked = unpack_column("c", packed, len(values))
    assert unpacked == values
    assert [type(v) for v in unpacked] == [type(v) for v in values]


def _pack_column_by_pairs(values: list[object]) -> object:
    """pack_column as first written (a Python loop over pairs): the reference for its form."""
    if len(values) > 1 and values.count(values[0]) == len(values) and (
        not isinstance(values[0], int | float) or all(type(v) is type(values[0]) for v in values)
    ):
        return {"same": values[0]}
    if len(values) < 8 or not all(type(v) is int for v in values):
        return values
    pairs = list(itertools.pairwise(values))
    for kind, breaks in (
        ("runs", [i for i, (a, b) in enumerate(pairs, 1) if a != b]),
        ("steps", [i for i, (a, b) in enumerate(pairs, 1) if b != a + 1]),  # type: ignore[operator]
    ):
        if len(breaks) < len(values) // 4:
            starts, ends = [0, *breaks], [*breaks, len(values)]
            return {kind: [[values[a], b - a] for a, b in zip(starts, ends, strict=True)]}
    return values


def test_pack_column_gives_the_form_of_the_pairwise_reference() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        size = rng.randrange(40)
        shape = rng.randrange(4)
        values: list[object]
        if shape == 0:
            values = [rng.choice([0, 1, True, 1.0, None, "a", 2**70]) for _ in range(size)]
        elif shape == 1:
            values = sorted(rng.randrange(4) for _ in range(size))
        elif shape == 2:
            values = list(itertools.accumulate(
                1 if rng.random() < 0.9 else rng.randrange(-3, 3) for _ in range(size)))
        else:
            values = [rng.randrange(3) for _ in range(size)]
        packed = pack_column(values)
        assert json.dumps(packed) == json.dumps(_pack_column_by_pairs(values)), values


def test_creations_keep_built_indexes_as_a_fresh_build_gives_them() -> None:
    """ContactsState.add (the ContactCreated path) keeps the email index, the name order and
    the search index in step, as put and a build from scratch do."""
    live = ContactsState()
    evolve(live, ContactCreated("a", {"name": "Zed", "emails": ("z@x.org",)}, T0))
    live.first_with_email("z@x.org")  # build the email index and the name order
    live.ordered_keys()
    assert [c.id for c in search_contacts(live, "z").items] == ["a"]  # builds the index
    for contact_id, name, emails in [("b", "amy", ("Z@x.org", "b@x.org")), ("c", "Bob", ())]:
        evolve(live, ContactCreated(contact_id, {"name": name, "emails": emails}, T0))
    fresh = ContactsState.of({c.id: c for c in live})
    assert live.ids_with_email("z@X.org") == fresh.ids_with_email("z@X.org") == ["a", "b"]
    assert live.ordered_keys() == fresh.ordered_keys()
    assert live.search_index is not None
    for query in ("z", "b", "amy", "x.org"):
        found = search_contacts(live, query).items
        assert found == search_contacts(fresh, query).items != []
