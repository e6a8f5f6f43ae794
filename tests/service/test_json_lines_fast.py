"""The HTTP layer's prebuilt JSON decoder and line encoder behave as json.loads/json.dumps."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contacts_cli.http.bodies import loads_strict
from contacts_cli.http.routes import _line

TEXTS = ['{"a": 1}', '{"name": "Zo\\u00eb", "x": [1.5, null, true]}', "[1, 2]", "\ufeff{}",
         '{"a": NaN}', '{"a": Infinity}', "{", "", '"\\ud800"', '{"a": 1} x', "  {} "]


def outcome(load: Any, data: Any) -> tuple[str, Any]:
    try:
        return "ok", load(data)
    except ValueError as exc:
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("text", TEXTS)
def test_loads_strict_is_json_loads_without_constants(text: str) -> None:
    def reference(data: Any) -> Any:
        def refuse(name: str) -> Any:
            raise ValueError(f"{name} is not valid JSON")

        return json.loads(data, parse_constant=refuse)

    for data in (text, text.encode(), text.encode("utf-16")):
        assert outcome(loads_strict, data) == outcome(reference, data)


def test_lines_are_what_json_dumps_writes() -> None:
    for value in ({"row": 1, "outcome": "created", "id": "x", "errors": []},
                  {"row": 2, "errors": [{"field": "emails[0]", "message": "Zoë \"q\"\n"}],
                   "reason": None, "n": 1.5}):
        expected = json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"
        assert _line(value) == expected.encode()
