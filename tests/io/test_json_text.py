"""The prebuilt row encoders write exactly what ``json.dumps`` writes with the same options."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from contacts_cli.json_text import row_encoder


def _values(count: int) -> list[Any]:
    rng = random.Random(7)
    texts = ["Zoë", "Ørjan Ødegård", 'quote " and \\ backslash', "tab\tnew\nline", "",
             "emoji 🎉", "\u2028", "ascii"]
    values: list[Any] = []
    for i in range(count):
        values.append({
            rng.choice(texts) + str(i): rng.choice(texts),
            "n": rng.randint(-10**12, 10**12),
            "x": rng.random() * 10**rng.randint(-5, 5),
            "list": [rng.choice(texts), None, True, False, i],
            "nested": {"b": [{"c": rng.choice(texts)}], "a": None},
        })
    return values


@pytest.mark.parametrize(
    ("separators", "sort_keys"),
    [((", ", ": "), False), ((", ", ": "), True), ((",", ":"), False)],
)
def test_row_encoder_matches_json_dumps(separators: tuple[str, str], sort_keys: bool) -> None:
    encode = row_encoder(separators=separators, sort_keys=sort_keys)
    for value in _values(500):
        assert encode(value) == json.dumps(value, ensure_ascii=False, separators=separators,
                                           sort_keys=sort_keys)


def test_row_encoder_refuses_what_json_dumps_refuses() -> None:
    with pytest.raises(TypeError):
        row_encoder()({"k": object()})
