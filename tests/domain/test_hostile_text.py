"""Text that cannot be stored is refused by validation, naming the field (issue 10).

A lone surrogate cannot be encoded as UTF-8, so a contact holding one would crash the
journal's JSON encoder; U+0000 cannot be stored in PostgreSQL text. Both must stop at
validation, on the fast paths as on the general one, and every error must itself be
encodable as UTF-8 JSON (an unknown field *name* may hold the bad character too).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from contacts_cli.domain import ValidationError, validate_new, validate_patch
from contacts_cli.domain.model import EDITABLE_FIELDS, LIST_FIELDS
from contacts_cli.domain.validation import validate_new_general

Validate = Callable[[dict[str, Any]], dict[str, Any]]
VALIDATORS: dict[str, Validate] = {
    "new": lambda raw: validate_new(raw),
    "new-general": lambda raw: validate_new_general(raw),
    "patch": lambda raw: validate_patch(raw),
}
BAD_CHARACTERS = {"lone high surrogate": "\ud800", "lone low surrogate": "\udfff", "NUL": "\x00"}
PLAIN = {"emails": "ada@example.com", "phones": "+442071234567", "labels": "friends",
         "birthday": "1815-12-10"}


def encodable_errors(raw: dict[str, Any], validate: Validate) -> dict[str, str]:
    """The validation errors of ``raw``; fails unless they encode as UTF-8 JSON."""
    with pytest.raises(ValidationError) as info:
        validate(raw)
    json.dumps(info.value.to_list(), ensure_ascii=False).encode("utf-8")
    str(info.value).encode("utf-8")
    return {e.field: e.message for e in info.value.errors}


def value_with(field: str, char: str, *, as_list: bool) -> Any:
    """A value for ``field`` that is valid but for one ``char`` inside it."""
    text = PLAIN.get(field, "Ada Lovelace")
    bad = text[:3] + char + text[3:]
    return [bad] if as_list else bad


@pytest.mark.parametrize("how", sorted(VALIDATORS))
@pytest.mark.parametrize("char_name", sorted(BAD_CHARACTERS))
@pytest.mark.parametrize("field", EDITABLE_FIELDS)
def test_a_bad_character_in_any_field_is_refused_naming_it(
    how: str, char_name: str, field: str
) -> None:
    as_list = field in LIST_FIELDS
    raw = {"name": "Ada", field: value_with(field, BAD_CHARACTERS[char_name], as_list=as_list)}
    errors = encodable_errors(raw, VALIDATORS[how])
    assert list(errors) == [f"{field}[0]" if as_list else field]


@pytest.mark.parametrize("how", sorted(VALIDATORS))
def test_a_surrogate_is_refused_as_a_bare_string_in_a_list_field(how: str) -> None:
    errors = encodable_errors({"name": "Ada", "labels": "a\ud800"}, VALIDATORS[how])
    assert errors == {"labels[0]": "must not contain a lone surrogate (U+D800)"}


@pytest.mark.parametrize("how", sorted(VALIDATORS))
def test_a_surrogate_is_named_in_the_message(how: str) -> None:
    errors = encodable_errors({"name": "Ad\udc80a"}, VALIDATORS[how])
    assert errors == {"name": "must not contain a lone surrogate (U+DC80)"}


@pytest.mark.parametrize("how", sorted(VALIDATORS))
@pytest.mark.parametrize("key", ["\ud800", "na\udfffme", "\x00", "a\nb"])
def test_an_unknown_field_name_with_a_bad_character_is_reported_escaped(
    how: str, key: str
) -> None:
    errors = encodable_errors({"name": "Ada", key: "x"}, VALIDATORS[how])
    assert errors == {ascii(key): "unknown field"}


def test_a_plain_unknown_field_name_is_reported_as_written() -> None:
    assert encodable_errors({"name": "Ada", "nick näme": "x"}, validate_new) == {
        "nick näme": "unknown field"
    }


def test_valid_non_ascii_text_still_passes_the_fast_path() -> None:
    assert validate_new({"name": "Ada 😀 Lovelace", "labels": ["ünï"]})["name"] == (
        "Ada 😀 Lovelace"
    )
