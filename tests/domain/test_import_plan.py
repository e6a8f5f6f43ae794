"""Batch import: one decide per chunk, duplicates by email against state and batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from contacts_cli.domain import (
    ContactCreated,
    ContactsState,
    ContactUpdated,
    DuplicatePolicy,
    ImportContacts,
    ImportRow,
    ValidationError,
    decide,
    evolve,
    plan_import,
)
from contacts_cli.domain.validation import MAX_ITEMS
from tests.domain.conftest import T0, at, ids


def seeded() -> ContactsState:
    state = ContactsState()
    evolve(
        state,
        ContactCreated("old", {"name": "Old", "emails": ("Dup@X.org",), "labels": ("a",)}, T0),
    )
    return state


def rows(*data: dict[str, Any]) -> Sequence[ImportRow]:
    return [ImportRow(i + 2, d) for i, d in enumerate(data)]


def statuses(state: ContactsState, policy: DuplicatePolicy, *data: dict[str, Any]) -> list[str]:
    plan = plan_import(state, ImportContacts(rows(*data), policy), at(1), ids("n"))
    return [o.status for o in plan.outcomes]


def test_outcomes_per_row_with_refs_and_reasons() -> None:
    state = seeded()
    plan = plan_import(
        state,
        ImportContacts(
            rows(
                {"name": "New", "emails": ["new@x.org"]},
                {"name": "", "emails": ["bad"]},
                {"name": "Again", "emails": ["dup@x.org"]},
            )
        ),
        at(1),
        ids("n"),
    )
    assert [(o.ref, o.status, o.contact_id) for o in plan.outcomes] == [
        (2, "created", "n-00001"),
        (3, "rejected", None),
        (4, "skipped-duplicate", "old"),
    ]
    rejected = plan.outcomes[1]
    assert {e.field for e in rejected.errors} == {"name", "emails[0]"}
    assert rejected.reason and "name: is required" in rejected.reason
    assert plan.outcomes[2].reason == "duplicate of contact old (email dup@x.org)"
    assert [type(e) for e in plan.events] == [ContactCreated]
    assert plan.events[0].at == at(1)


def test_duplicates_within_the_batch_count() -> None:
    state = ContactsState()
    row_a = {"name": "A", "emails": ["same@x.org"]}
    row_b = {"name": "B", "emails": ["other@x.org", "SAME@x.org"], "company": "Co"}
    assert statuses(state, "skip", row_a, row_b) == ["created", "skipped-duplicate"]
    assert statuses(state, "create", row_a, row_b) == ["created", "created"]
    plan = plan_import(state, ImportContacts(rows(row_a, row_b), "update"), at(1), ids("n"))
    assert [o.status for o in plan.outcomes] == ["created", "updated"]
    created, updated = plan.events
    assert isinstance(updated, ContactUpdated) and updated.contact_id == created.contact_id
    for event in plan.events:
        evolve(state, event)
    contact = state.get("n-00001")
    assert contact is not None
    assert contact.name == "B"
    assert contact.emails == ("same@x.org", "other@x.org")
    assert contact.company == "Co"
    assert contact.version == 2
    # A third row matching the email the update added also finds that contact.
    assert statuses(state, "skip", {"name": "C", "emails": ["Other@x.org"]}) == [
        "skipped-duplicate"
    ]


def test_update_policy_merges_into_existing_contacts() -> None:
    state = seeded()
    plan = plan_import(
        state,
        ImportContacts(
            rows(
                {"name": "Old", "emails": ["dup@x.org"], "labels": ["b", "A"]},
                {"name": "Old", "emails": ["dup@x.org"]},
            ),
            "update",
        ),
        at(1),
        ids("n"),
    )
    assert [o.status for o in plan.outcomes] == ["updated", "unchanged"]
    [event] = plan.events
    assert isinstance(event, ContactUpdated)
    assert dict(event.changes) == {"labels": ("a", "b")}


def test_update_policy_rejects_a_merge_beyond_list_limits() -> None:
    state = ContactsState()
    evolve(state, ContactCreated("old", {"name": "Old", "emails": ("dup@x.org", "x@x.org")}, T0))
    emails = ["dup@x.org"] + [f"e{i}@x.org" for i in range(MAX_ITEMS["emails"] - 1)]
    plan = plan_import(
        state, ImportContacts(rows({"name": "Old", "emails": emails}), "update"), at(1), ids("n")
    )
    [outcome] = plan.outcomes
    assert outcome.status == "rejected"
    assert outcome.errors[0].field == "emails"
    assert plan.events == []


def test_decide_returns_the_plan_events_and_leaves_state_alone(
    new_id: Callable[[], str],
) -> None:
    state = seeded()
    command = ImportContacts(rows({"name": "N1"}, {"name": "N2"}))
    events = decide(state, command, at(1), new_id)
    assert [e.contact_id for e in events] == ["id-00001", "id-00002"]
    assert len(state) == 1


def test_unknown_policy_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="policy"):
        plan_import(ContactsState(), ImportContacts([], "merge"), T0, ids())  # type: ignore[arg-type]


def test_import_into_a_large_state_scales() -> None:
    """10,000 rows into 100,000 contacts: correctness here; timing lives in bench/."""
    state = ContactsState()
    for i in range(100_000):
        evolve(state, ContactCreated(f"c{i}", {"name": f"N{i}", "emails": (f"u{i}@x.org",)}, T0))
    data = [{"name": f"M{i}", "emails": [f"u{i * 20}@x.org"]} for i in range(10_000)]
    plan = plan_import(state, ImportContacts(rows(*data)), at(1), ids("n"))
    counts = {
        s: sum(o.status == s for o in plan.outcomes) for s in ("created", "skipped-duplicate")
    }
    assert counts == {"created": 5_000, "skipped-duplicate": 5_000}
    for event in plan.events:
        evolve(state, event)
    assert len(state) == 105_000
    assert len(state.ordered_keys()) == 105_000


def test_outcome_json_form() -> None:
    plan = plan_import(ContactsState(), ImportContacts(rows({"name": "", "x": 1})), T0, ids())
    assert plan.outcomes[0].to_dict() == {
        "ref": 2,
        "status": "rejected",
        "contact_id": None,
        "reason": "x: unknown field; name: is required",
        "errors": [
            {"field": "x", "message": "unknown field"},
            {"field": "name", "message": "is required"},
        ],
    }
