"""The contract's argument checks and JSON encoding: each cheap branch against its reference.

``encode_json`` takes orjson's text when it decodes back to the payload itself and lets the
standard library's encoder (``encode_json_reference``) decide everything else; ``check_append``
skips the per-text checks (``check_append_texts``) for ASCII without NUL. These tests pin
that the cheap branches accept exactly what the references accept, and fail the same way.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import uuid
from collections.abc import Callable

import pytest

from persistence import InvalidArgument, NewEvent, SerializationError
from persistence.engine import (
    MAX_SEQUENCE_NR,
    check_append,
    check_append_texts,
    encode_json,
    encode_json_reference,
    encode_payloads,
    normal_json,
)


class Text(str):
    pass


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@dataclasses.dataclass
class Point:
    x: int


def nested(depth: int) -> object:
    value: object = []
    for _ in range(depth):
        value = [value]
    return value


def outcome(encode: Callable[[object, str], str], payload: object) -> object:
    """The decoded text, or the error's type and message."""
    try:
        return ("ok", json.loads(encode(payload, "the payload")))
    except SerializationError as exc:
        return ("error", str(exc))


PAYLOADS = {
    "plain": {"a": [1, 2.5, None, True, False], "b": {"c": "d", "e": ""}},
    "no-null": {"id": "00000000-0000-4000-8000-000000000001", "n": 3, "ok": True},
    "escaped-backslash-u0000": {"c": "d\\u0000e"},
    "escapes": ["tab\tand \"quotes\" and \\ backslash", -0.0, 1e-7, 1e300],
    "big-int": [10**30, -(2**64)],
    "non-ascii": [{"x": "Zoë", "y": "日本"}],
    "lone-surrogate": [{"x": "lone \ud800 surrogate"}],
    "nul": [{"x": "\x00"}],
    "nul-in-key": {"k\x00": 1},
    "nan": [float("nan")],
    "infinity": {"x": float("-inf")},
    "set": [{1, 2}],
    "object": [{"k": object()}],
    "bytes": b"raw",
    "non-str-keys": {1: "a", 2.5: "b", False: "c", None: "d"},
    "str-subclass": {"k": Text("v")},
    "dataclass": [Point(1)],
    "datetime": [datetime.datetime(2024, 1, 1)],
    "tuple": {"t": (1, "two")},
    "uuid": {"k": uuid.UUID(int=1)},
    "enum": [Colour.RED],
    "int-enum": [Level.HIGH],
    "null-in-a-string": {"state": '{"a":null,"b":[1]}'},
    "deep": nested(300),
    "too-deep": nested(100_000),
}


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_encode_json_accepts_and_refuses_what_the_reference_does(payload: object) -> None:
    assert outcome(encode_json, payload) == outcome(encode_json_reference, payload)


def test_the_cheap_branch_keeps_non_ascii_as_utf8_and_is_compact() -> None:
    assert encode_json({"name": "Zoë", "n": [1, 2]}, "p") == '{"name":"Zoë","n":[1,2]}'


def test_cycles_are_refused_by_both_branches() -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    with pytest.raises(SerializationError, match="the payload"):
        encode_json(cycle, "the payload")


def test_the_name_of_a_payload_is_only_built_on_error() -> None:
    def fail() -> str:
        raise AssertionError("named without an error")

    assert encode_json({"ok": 1}, fail) == '{"ok":1}'


def test_encode_payloads_names_the_first_event_that_cannot_be_stored() -> None:
    events = [NewEvent("A", {"ok": 1}), NewEvent("Bad", {"s": "a\x00b"}), NewEvent("C", [{1}])]
    with pytest.raises(SerializationError, match=r"event #2 \(Bad\) for 'p'.*U\+0000"):
        encode_payloads("p", events)


@pytest.mark.parametrize(
    "payloads",
    [[{"ok": 1}, {"n": 2.5}], [{"big": 10**30, "none": None}], [{"t": (1, 2)}, "Zoë"]],
    ids=["cheap-branch", "reference", "tuple"],
)
def test_encode_payloads_gives_copies_as_a_replay_decodes_them(payloads: list[object]) -> None:
    events = [NewEvent("E", payload) for payload in payloads]
    text, copies = encode_payloads("p", events)
    assert copies == json.loads(text) == json.loads(encode_json_reference(payloads, "p"))
    assert all(type(c) is type(d) for c, d in zip(copies, json.loads(text), strict=True))



def json_types(value: object) -> object:
    """``value`` with each leaf's type beside it: equal only where the types are too."""
    if isinstance(value, dict):
        return {k: json_types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_types(v) for v in value]
    return (type(value).__name__, value)


@pytest.mark.parametrize("payload", PAYLOADS.values(), ids=PAYLOADS.keys())
def test_normal_json_is_what_a_replay_of_the_stored_text_gives(payload: object) -> None:
    """The cheap branch hands back orjson's own copy: it must be the reference text decoded,
    types included (an IntEnum becomes an int, a tuple a list), or the same refusal."""
    expected = outcome(encode_json_reference, payload)
    try:
        got: object = ("ok", normal_json(payload, "the payload"))
    except SerializationError as exc:
        got = ("error", str(exc))
    assert got == expected
    if got[0] == "ok":
        assert json_types(got[1]) == json_types(expected[1])  # type: ignore[index]

EVENT = NewEvent("E", {}, tags=frozenset({"t"}))
TEXT_CASES = [
    ("p", EVENT),
    ("p\x00", EVENT),
    ("p", NewEvent("E\x00", {})),
    ("p", NewEvent("E", {}, tags=frozenset({"t\x00"}))),
    ("p", NewEvent("É", {})),
    ("p", NewEvent("E", {}, tags=frozenset({"Zoë"}))),
    ("pé\ud800", EVENT),
    ("p", NewEvent("E\udfff", {})),
    ("p", NewEvent("E", {}, tags=frozenset({"\ud800"}))),
]


def raised(check: Callable[[], None]) -> str | None:
    try:
        check()
    except InvalidArgument as exc:
        return str(exc)
    return None


@pytest.mark.parametrize(("pid", "event"), TEXT_CASES)
@pytest.mark.parametrize("count", [1, 3])
def test_check_append_refuses_exactly_what_the_per_text_checks_refuse(
    pid: str, event: NewEvent, count: int
) -> None:
    events = [NewEvent("A", {}), event, event][-count:]
    assert raised(lambda: check_append(pid, events, 0)) == raised(
        lambda: check_append_texts(pid, events)
    )


def test_check_append_refuses_bad_sequence_numbers() -> None:
    with pytest.raises(InvalidArgument, match=">= 0"):
        check_append("p", [EVENT], -1)
    with pytest.raises(InvalidArgument, match="overflow"):
        check_append("p", [EVENT, EVENT], MAX_SEQUENCE_NR - 1)
    check_append("p", [EVENT], MAX_SEQUENCE_NR - 1)

