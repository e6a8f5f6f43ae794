"""``validate_new``'s fast paths must give exactly what the general path gives.

A generated corpus of contacts, each field drawn from edge cases (blank, padded, non-ASCII
and decomposed text, line breaks and control characters, every length limit's edge, wrong
types, bad birthdays, emails and phones, duplicate list items, unknown and read-only keys),
goes through :func:`validate_new` and :func:`validate_new_general`: the same fields, or the
same errors in the same order.
"""

from __future__ import annotations

import random
from typing import Any

from contacts_cli.domain import ValidationError
from contacts_cli.domain.validation import validate_new, validate_new_general

TEXTS: list[Any] = [
    None, "", " ", "   ", "Ada", "  Ada Lovelace ", "Zoë", "Zoe\u0308", " Ørjan Ødegård ",
    "a\nb", "a\r\nb", "a\rb", "a\tb", "x\x00y", "x\x7fy", "x\x1by", "\u00a0Ada\u00a0",
    "Ada\u2028Byron", "\u3000", "\uff46\uff55\uff4c\uff4c", "\ufeffBOM", "e\u0301" * 3, "名前",
    "x" * 200, "x" * 201, " " + "x" * 200 + " ", "x" * 1000, "x" * 1001, "é" * 200,
    "e\u0301" * 200, 5, 1.5, True, [], ["Ada"], {"a": 1}, "1815-12-10", "18151210",
    "--02-29", "--02-30", "2023-02-29", "1815-12-1", " 1815-12-10 ", "x" * 10000,
    "x" * 10001, "line one\nline two", "tab\tstop\r\n",
]
EMAILS: list[Any] = [
    "ada@example.org", "ADA@Example.ORG", " ada@example.org ", "Postmaster@example.org",
    "ada@localhost", "not-an-email", "ada@", "émile@example.org", "ada@bücher.org",
    "a@b@c.org", "", " ", "x" * 250 + "@e.org", "a\n@example.org", "a;b@example.org", 7,
    None, "ada@example.org\x00",
]
PHONES: list[Any] = [
    "+1 415 555 0100", "415 555 0100", "+44 20 7946 0958", "555", "+999 1234", "abc",
    "+1 415 555 0100 ext. 12", "", " ", "+1\n415 555 0100", "x" * 65, 3, None,
    "+1 (415) 555-0100",
]
LABELS: list[Any] = [
    "friends", "Friends", "work", "a;b", "", "  ", "x" * 64, "x" * 65, "ø", "tab\t", 9, None,
    "o\u0308",
]
EXTRA_KEYS: list[tuple[str, Any]] = [
    ("id", "x"), ("version", 2), ("nickname", "Ace"), ("created_at", "2020-01-01"),
]
TEXT_FIELDS = ("name", "company", "title", "address", "birthday", "notes")
LISTS = {"emails": EMAILS, "phones": PHONES, "labels": LABELS}


def outcome(validate: Any, raw: Any) -> tuple[str, Any]:
    try:
        return "ok", validate(raw)
    except ValidationError as exc:
        return "errors", [(e.field, e.message) for e in exc.errors]


def random_contact(rng: random.Random) -> Any:
    raw: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        if rng.random() < 0.6:
            raw[name] = rng.choice(TEXTS)
    for name, pool in LISTS.items():
        roll = rng.random()
        if roll < 0.3:
            raw[name] = [rng.choice(pool) for _ in range(rng.choice((0, 1, 2, 3, 25)))]
        elif roll < 0.4:
            raw[name] = rng.choice(pool)
        elif roll < 0.45:
            raw[name] = rng.choice(((rng.choice(pool),), {"a": 1}, 5))
    if rng.random() < 0.05:
        key, value = rng.choice(EXTRA_KEYS)
        raw[key] = value
    return raw


def test_fast_path_agrees_with_the_general_path_on_a_generated_corpus() -> None:
    rng = random.Random(20261123)
    corpus: list[Any] = [random_contact(rng) for _ in range(20_000)]
    corpus += [{"name": text} for text in TEXTS]
    corpus += [{"name": "A", name: text} for name in TEXT_FIELDS for text in TEXTS]
    corpus += [{"name": "A", name: [item]} for name, pool in LISTS.items() for item in pool]
    corpus += [[("name", "A")], "not a mapping", None]
    kinds = set()
    for raw in corpus:
        fast = outcome(validate_new, raw)
        assert fast == outcome(validate_new_general, raw), raw
        kinds.add(fast[0])
    assert kinds == {"ok", "errors"}


def test_mappings_other_than_dict_take_the_general_key_check() -> None:
    from types import MappingProxyType

    raw = MappingProxyType({"name": "Ada", "nickname": "Ace"})
    assert outcome(validate_new, raw) == outcome(validate_new_general, raw)
    assert outcome(validate_new, raw)[0] == "errors"

