"""Event payloads: versioned, JSON-clean, upcastable, and loud about what they don't know."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contacts_cli.domain import (
    EVENT_VERSIONS,
    ContactCreated,
    ContactRemoved,
    ContactUpdated,
    EventSchemaError,
    event_from_payload,
    event_to_payload,
    validate_new,
)
from contacts_cli.domain.events import event_to_encodable
from tests.domain.conftest import T0


def test_payloads_round_trip_through_json() -> None:
    events = [
        ContactCreated("c1", validate_new({"name": "Ada", "emails": ["a@x.org"]}), T0),
        ContactUpdated("c1", {"title": None, "labels": ("x", "y")}, T0),
        ContactRemoved("c1", T0),
    ]
    for event in events:
        name, version, payload = event_to_payload(event)
        assert (name, version) == (type(event).__name__, EVENT_VERSIONS[name])
        stored = json.loads(json.dumps(payload))
        assert event_from_payload(name, version, stored) == event


def test_the_encodable_payload_encodes_as_the_payload_does() -> None:
    from types import MappingProxyType

    events = [
        ContactCreated("c1", validate_new({"name": "Zoë", "emails": ["a@x.org"],
                                           "labels": ["a", "b"]}), T0),
        ContactUpdated("c1", MappingProxyType({"title": None, "labels": ("x", "y")}), T0),
        ContactRemoved("c1", T0),
    ]
    for event in events:
        name, version, payload = event_to_payload(event)
        assert event_to_encodable(event)[:2] == (name, version)
        assert json.dumps(event_to_encodable(event)[2]) == json.dumps(payload)


def test_payload_shape_is_stable() -> None:
    assert event_to_payload(ContactUpdated("c1", {"labels": ("x",)}, T0)) == (
        "ContactUpdated",
        2,
        {"id": "c1", "at": "2026-01-01T12:00:00.000000+00:00", "changes": {"labels": ["x"]}},
    )


def test_unknown_and_future_events_fail_loudly() -> None:
    with pytest.raises(EventSchemaError, match="unknown event type"):
        event_from_payload("ContactMerged", 1, {})
    with pytest.raises(EventSchemaError, match="newer"):
        event_from_payload("ContactRemoved", 2, {"id": "c", "at": "2026-01-01T00:00:00+00:00"})
    with pytest.raises(EventSchemaError, match="malformed"):
        event_from_payload("ContactRemoved", 1, {"id": "c"})
    with pytest.raises(EventSchemaError, match="malformed"):
        event_from_payload(
            "ContactUpdated", 1, {"id": "c", "at": "2026-01-01T00:00:00+00:00", "changes": {"x": 1}}
        )


def test_upcasters_lift_old_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(EVENT_VERSIONS, "ContactCreated", 2)

    def v0_to_v1(p: dict[str, Any]) -> dict[str, Any]:
        return {"id": p["contact_id"], "at": p["at"], "fields": {"name": p["full_name"]}}

    def v1_to_v2(p: dict[str, Any]) -> dict[str, Any]:
        return p

    old = {"contact_id": "c9", "at": "2026-01-01T12:00:00+00:00", "full_name": "Old"}
    with pytest.raises(EventSchemaError, match="no upcaster"):
        event_from_payload("ContactCreated", 0, old, upcasters={})
    event = event_from_payload(
        "ContactCreated",
        0,
        old,
        upcasters={("ContactCreated", 0): v0_to_v1, ("ContactCreated", 1): v1_to_v2},
    )
    assert event == ContactCreated("c9", {"name": "Old"}, T0)
