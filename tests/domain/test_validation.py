"""Validation: every problem reported with its field path, normalisation idempotent."""

from __future__ import annotations

from typing import Any

import pytest

from contacts_cli.domain import (
    FieldError,
    ValidationError,
    default_region,
    normalise_birthday,
    normalise_phone,
    validate_new,
    validate_patch,
)
from contacts_cli.domain.validation import MAX_ITEMS, MAX_TEXT_LENGTH


def errors_of(raw: dict[str, Any], patch: bool = False) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        (validate_patch if patch else validate_new)(raw)
    return {e.field: e.message for e in info.value.errors}


def test_minimal_contact_gets_defaults() -> None:
    assert validate_new({"name": "  Ada Lovelace "}) == {
        "name": "Ada Lovelace",
        "emails": (),
        "phones": (),
        "company": None,
        "title": None,
        "address": None,
        "birthday": None,
        "notes": None,
        "labels": (),
    }


def test_full_contact_is_normalised() -> None:
    out = validate_new(
        {
            "name": "Zoë Ünal",
            "emails": ["Zoe@Example.COM", "zoe@example.com", "z@b.org"],
            "phones": ["(202) 555-0123", "+44 20 7946 0958", "202.555.0123 x45"],
            "company": "ACME",
            "title": "",
            "address": "1 Main St\r\nTown",
            "birthday": "19800512",
            "notes": "line1\nline2\ttab",
            "labels": ["Friends", "friends", "Work"],
        }
    )
    assert out["emails"] == ("Zoe@example.com", "z@b.org")
    assert out["phones"] == ("+12025550123", "+442079460958", "+12025550123 ext. 45")
    assert out["title"] is None
    assert out["address"] == "1 Main St\nTown"
    assert out["birthday"] == "1980-05-12"
    assert out["labels"] == ("Friends", "Work")
    assert validate_new(out) == out  # idempotent


def test_name_is_required() -> None:
    assert errors_of({}) == {"name": "is required"}
    assert errors_of({"name": "   "}) == {"name": "is required"}


def test_every_problem_is_reported_with_its_path() -> None:
    errors = errors_of(
        {
            "name": 5,
            "emails": ["ok@example.com", "not-an-email", 7],
            "phones": ["12"],
            "birthday": "1980-02-30",
            "colour": "red",
            "id": "x",
        }
    )
    assert errors["name"] == "must be a string"
    assert "emails[1]" in errors and "@" in errors["emails[1]"]
    assert errors["emails[2]"] == "must be a string"
    assert errors["phones[0]"].startswith("is too short") or "not" in errors["phones[0]"]
    assert "not a real date" in errors["birthday"]
    assert errors["colour"] == "unknown field"
    assert errors["id"] == "is set by the server and cannot be given"
    assert "emails[0]" not in errors


def test_validation_error_message_and_list() -> None:
    with pytest.raises(ValidationError) as info:
        validate_new({"name": "x", "emails": ["a@b.c", "bad"]})
    assert info.value.errors[0].field == "emails[1]"
    assert str(info.value).startswith("emails[1]: ")
    assert isinstance(info.value.errors[0], FieldError)


def test_text_length_limits_name_the_field() -> None:
    limit = MAX_TEXT_LENGTH["name"]
    assert validate_new({"name": "a" * limit})["name"] == "a" * limit
    assert errors_of({"name": "a" * (limit + 1)}) == {
        "name": f"is too long ({limit + 1} characters, at most {limit})"
    }
    assert "too long" in errors_of({"name": "x", "notes": "n" * 10_001})["notes"]
    assert "too long" in errors_of({"name": "x", "labels": ["l" * 65]})["labels[0]"]


def test_list_size_limits() -> None:
    emails = [f"u{i}@example.com" for i in range(MAX_ITEMS["emails"] + 1)]
    assert errors_of({"name": "x", "emails": emails}) == {
        "emails": f"has {len(emails)} items, at most {MAX_ITEMS['emails']}"
    }


def test_single_line_fields_reject_line_breaks() -> None:
    assert "line breaks" in errors_of({"name": "a\nb"})["name"]
    assert "control" in errors_of({"name": "x", "notes": "bell\x07"})["notes"]


def test_lists_must_be_lists_but_a_single_string_is_one_item() -> None:
    assert validate_new({"name": "x", "emails": "a@example.com"})["emails"] == ("a@example.com",)
    assert errors_of({"name": "x", "labels": {"a": 1}}) == {"labels": "must be a list of strings"}
    assert "';'" in errors_of({"name": "x", "labels": ["a;b"]})["labels[0]"]


def test_input_must_be_a_mapping() -> None:
    with pytest.raises(ValidationError):
        validate_new(["name"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1980-05-12", "1980-05-12"),
        ("19800512", "1980-05-12"),
        ("--05-12", "--05-12"),
        ("--0229", "--02-29"),
    ],
)
def test_birthdays(raw: str, expected: str) -> None:
    assert normalise_birthday(raw) == expected
    assert normalise_birthday(expected) == expected


@pytest.mark.parametrize("raw", ["12/05/1980", "1980-13-01", "--02-30", "tomorrow", ""])
def test_bad_birthdays(raw: str) -> None:
    with pytest.raises(ValueError, match="ISO date"):
        normalise_birthday(raw)


def test_phone_region_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTACTS_DEFAULT_REGION", "gb")
    assert default_region() == "GB"
    assert normalise_phone("020 7946 0958") == "+442079460958"
    assert validate_new({"name": "x", "phones": ["020 7946 0958"]})["phones"] == ("+442079460958",)
    assert normalise_phone("202 555 0123", "US") == "+12025550123"
    monkeypatch.setenv("CONTACTS_DEFAULT_REGION", "XX")
    with pytest.raises(ValueError, match="CONTACTS_DEFAULT_REGION"):
        default_region()


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("555-0100", "area code"),
        ("abc", "not a phone number"),
        ("+999 123", "invalid country code"),
        ("12345678901234567", "too long"),
    ],
)
def test_bad_phones(raw: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        normalise_phone(raw, "US")


def test_patch_validates_only_given_fields() -> None:
    assert validate_patch({"company": "New"}) == {"company": "New"}
    assert validate_patch({"company": None, "emails": None}) == {"company": None, "emails": ()}
    assert validate_patch({}) == {}
    assert errors_of({"name": None}, patch=True) == {"name": "cannot be cleared"}
    assert errors_of({"name": ""}, patch=True) == {"name": "is required"}
    assert errors_of({"nick": "x", "version": 3}, patch=True) == {
        "nick": "unknown field",
        "version": "is set by the server and cannot be given",
    }


def test_phone_memo_gives_the_same_answer_and_error_twice() -> None:
    for _ in range(2):
        assert normalise_phone("+1 415 555 0100") == "+14155550100"
        with pytest.raises(ValueError, match="is too short"):
            normalise_phone("+1 415", "US")
