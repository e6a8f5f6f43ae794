"""The import path's JSON encoders write exactly what ``json.dumps`` writes where that matters:
the client's request rows (the server must see NaN, Infinity and large integers as the
standard library writes them), the chunk keys' row text (journaled keys), and the server's
outcome lines (orjson, for the values an outcome holds)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from contacts_cli.backends.http import _ROW_JSON
from contacts_cli.cli.imports import _key_json
from contacts_cli.http.routes import _line

TEXTS = ["Zoë", "Ørjan Ødegård", 'quote " and \\ backslash', "tab\tnew\nline", "", "emoji 🎉",
         "\u2028", "ascii", "\x00\x01\x1f\x7f", "\b\f\r", "/</script>", "\ufeff"]


def _values(count: int) -> list[Any]:
    rng = random.Random(7)
    values: list[Any] = []
    for i in range(count):
        values.append({
            rng.choice(TEXTS) + str(i): rng.choice(TEXTS),
            "n": rng.randint(-10**12, 10**12),
            "x": rng.random() * 10**rng.randint(-5, 5),
            "list": [rng.choice(TEXTS), None, True, False, i],
            "nested": {"b": [{"c": rng.choice(TEXTS)}], "a": None},
        })
    return values


def _outcomes(count: int) -> list[dict[str, Any]]:
    """Outcome lines as the import route writes them: text, integers, lists and None."""
    rng = random.Random(11)
    return [{"row": i, "outcome": rng.choice(["created", "updated", "skipped", "rejected"]),
             "id": rng.choice([None, f"id-{i}"]),
             "errors": [{"field": rng.choice(TEXTS), "message": rng.choice(TEXTS)}
                        for _ in range(rng.randint(0, 2))],
             "reason": rng.choice(TEXTS)} for i in range(count)]


def test_client_rows_are_what_json_dumps_writes() -> None:
    extremes = [{"n": float("nan"), "i": float("inf"), "big": 2**70, "neg": -0.0, "e": 1e100}]
    for value in _values(500) + extremes:
        assert _ROW_JSON(value) == json.dumps(value, ensure_ascii=False)


def test_chunk_key_rows_are_what_json_dumps_writes() -> None:
    for value in _values(500):
        assert _key_json(value) == json.dumps(value, ensure_ascii=False, sort_keys=True)


def test_outcome_lines_are_what_json_dumps_writes() -> None:
    summary = {"summary": {"created": 3, "updated": 0, "skipped": 1, "rejected": 2, "rows": 6,
                           "dry_run": False}}
    for value in [*_outcomes(2000), summary, {"error": {"status": 503, "detail": "down"}}]:
        expected = json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"
        assert _line(value) == expected.encode()


def test_the_encoders_refuse_what_json_dumps_refuses() -> None:
    for encode in (_key_json, _ROW_JSON, _line):
        with pytest.raises(TypeError):
            encode({"k": object()})
