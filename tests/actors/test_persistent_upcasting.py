"""The event codecs and upcasters: stored type + version, old versions upcast, loud failures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from actors.upcasting import DataclassEvents, EncodedEvent, JsonEvents, Upcasters
from persistence.errors import JournalIntegrityError


def _events() -> tuple[DataclassEvents, type[Any]]:
    events = DataclassEvents()

    @events.register("ContactAdded", version=3)
    @dataclass(frozen=True)
    class ContactAdded:
        id: str
        first: str
        last: str

    @events.upcaster("ContactAdded", from_version=1)
    def _rename(p: Any) -> Any:
        return {"id": p["id"], "name": p["full_name"]}

    @events.upcaster("ContactAdded", from_version=2)
    def _split(p: Any) -> Any:
        first, _, last = p["name"].partition(" ")
        return {"id": p["id"], "first": first, "last": last}

    return events, ContactAdded


def test_dataclass_round_trip_stores_type_and_version() -> None:
    events, added = _events()
    encoded = events.encode(added("c1", "Ada", "Lovelace"))
    payload = {"id": "c1", "first": "Ada", "last": "Lovelace"}
    assert encoded == EncodedEvent("ContactAdded", 3, payload)
    decoded = events.decode(encoded.type, encoded.version, encoded.payload)
    assert decoded == added("c1", "Ada", "Lovelace")


def test_old_versions_are_upcast_step_by_step() -> None:
    events, added = _events()
    v1 = {"id": "c1", "full_name": "Ada Lovelace"}
    assert events.decode("ContactAdded", 1, v1) == added("c1", "Ada", "Lovelace")
    assert events.decode("ContactAdded", 2, {"id": "c1", "name": "Grace Hopper"}) == added(
        "c1", "Grace", "Hopper"
    )


def test_a_missing_upcaster_step_fails_loudly() -> None:
    events = DataclassEvents()

    @events.register("Renamed", version=3)
    @dataclass
    class Renamed:
        name: str

    events.upcasters.add("Renamed", 2, lambda p: p)
    with pytest.raises(JournalIntegrityError, match=r"p #4: no upcaster turns 'Renamed' version 1"):
        events.decode("Renamed", 1, {"name": "x"}, where="p #4")


def test_a_newer_version_than_the_code_fails_loudly() -> None:
    events, _ = _events()
    with pytest.raises(JournalIntegrityError, match="version 4 is newer"):
        events.decode("ContactAdded", 4, {})


def test_unknown_type_and_bad_payload_fail_loudly() -> None:
    events, _ = _events()
    with pytest.raises(JournalIntegrityError, match=r"at #9: unknown event type 'Nope'"):
        events.decode("Nope", 1, {}, where="at #9")
    with pytest.raises(JournalIntegrityError, match="unknown field"):
        events.decode("ContactAdded", 3, {"id": "c", "first": "a", "last": "b", "extra": 1})
    with pytest.raises(JournalIntegrityError, match="cannot decode"):
        events.decode("ContactAdded", 3, {"id": "c"})


def test_a_failing_upcaster_fails_loudly() -> None:
    events, _ = _events()
    with pytest.raises(JournalIntegrityError, match="upcaster of 'ContactAdded' from version 1"):
        events.decode("ContactAdded", 1, {"id": "c1"})


def test_unregistered_classes_and_bad_registrations_are_rejected() -> None:
    events, _ = _events()

    @dataclass
    class Stray:
        x: int

    with pytest.raises(TypeError, match="not a registered event type"):
        events.encode(Stray(1))
    with pytest.raises(ValueError, match="already registered"):
        events.register("ContactAdded")(Stray)
    with pytest.raises(TypeError, match="must be a dataclass"):
        events.register("Plain")(int)
    with pytest.raises(ValueError, match="version must be an integer >= 1"):
        events.register("Zero", version=0)
    with pytest.raises(ValueError, match="already registered"):
        events.upcasters.add("ContactAdded", 1, lambda p: p)


def test_to_json_and_from_json_take_over() -> None:
    events = DataclassEvents()

    @events.register("Moved")
    @dataclass(frozen=True)
    class Moved:
        path: tuple[str, ...]

        def to_json(self) -> Any:
            return {"path": list(self.path)}

        @classmethod
        def from_json(cls, payload: Any) -> Moved:
            return cls(tuple(payload["path"]))

    encoded = events.encode(Moved(("a", "b")))
    assert encoded.payload == {"path": ["a", "b"]}
    assert events.decode("Moved", 1, encoded.payload) == Moved(("a", "b"))


def test_json_events_type_from_the_type_key_and_version_from_the_upcasters() -> None:
    upcasters = Upcasters().add("add", 1, lambda p: {"type": p["type"], "amount": p["n"]})
    events = JsonEvents(upcasters)
    assert events.encode({"type": "add", "amount": 2}) == EncodedEvent(
        "add", 2, {"type": "add", "amount": 2}
    )
    assert events.encode([1, 2]) == EncodedEvent("message", 1, [1, 2])
    assert events.decode("add", 1, {"type": "add", "n": 5}) == {"type": "add", "amount": 5}
    assert events.decode("other", 1, {"type": "other"}) == {"type": "other"}
