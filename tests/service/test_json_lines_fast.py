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


async def test_json_lines_splits_any_chunking_into_the_same_numbered_lines() -> None:
    import random

    from contacts_cli.http.bodies import json_lines

    class Body:
        def __init__(self, chunks: list[bytes]) -> None:
            self.chunks = chunks

        async def stream(self) -> Any:
            for chunk in self.chunks:
                yield chunk

    text = ('{"name": "A"}\n\n{"name": "Zoë"}\r\n' + '{"x": "' + "y" * 300 + '"}\n'
            + "[1]\n" + "{bad\n" + '{"name": "B"}\n' + "z" * 250 + "\n" + '{"last": 1}').encode()
    rng = random.Random(3)
    expected = None
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(0, 12)))
        chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        lines = [(line.number, line.value, line.error)
                 async for line in json_lines(Body(chunks), 200)]  # type: ignore[arg-type]
        if expected is None:
            expected = lines
            assert [n for n, _, _ in lines] == [1, 3, 4, 5, 6, 7, 8, 9]
            assert [n for n, _, e in lines if e and "exceeds" in e] == [4, 8]
        assert lines == expected
