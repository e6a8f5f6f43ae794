"""Validation and normalisation of user input, shared by the actor, HTTP and the CLI.

Every function collects *all* problems of one input before raising a single
:class:`~contacts_cli.domain.errors.ValidationError`, each naming its field path.
Normalisation is idempotent: validating already-normalised data returns it unchanged.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping
from datetime import date
from functools import lru_cache
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES

from contacts_cli.domain.card import CARD_VERSIONS, Card
from contacts_cli.domain.errors import FieldError, ValidationError
from contacts_cli.domain.model import EDITABLE_FIELDS, LIST_FIELDS, READ_ONLY_FIELDS

MAX_TEXT_LENGTH: dict[str, int] = {
    "name": 200,
    "company": 200,
    "title": 200,
    "address": 1000,
    "birthday": 10,
    "notes": 10_000,
}
MAX_ITEM_LENGTH: dict[str, int] = {"emails": 254, "phones": 64, "labels": 64}
MAX_ITEMS: dict[str, int] = {"emails": 20, "phones": 20, "labels": 50}
MULTILINE_FIELDS = frozenset({"address", "notes"})
DEFAULT_REGION = "US"
REGION_ENV = "CONTACTS_DEFAULT_REGION"

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CONTROL_SINGLE_LINE = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
"""A lone surrogate: a Python str may hold one, but no UTF-8 text (nor the journal) can."""
_BIRTHDAY = re.compile(r"^(?:(\d{4})-?(\d{2})-?(\d{2})|--(\d{2})-?(\d{2}))$")

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_EMAIL = re.compile(rf"({_ATEXT}(?:\.{_ATEXT})*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)")
"""An unquoted ASCII dot-atom local part and an ASCII hostname: the shape of nearly every
real address, for which :func:`normalise_email` can skip most of email-validator's work."""
_PLAIN_EMAIL_MAX = 254
_PLAIN_LOCAL_MAX = 64
_CASE_INSENSITIVE_LOCAL = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)
_DOMAIN_MEMO_MAX = 10_000
_domain_memo: dict[str, str | None] = {}
"""Per domain as written: its normalised form per email-validator, or None if it refused it."""
_PHONE_MEMO_MAX = 100_000


def default_region() -> str:
    """The region used for phone numbers written without ``+country`` (env, else ``US``)."""
    region = os.environ.get(REGION_ENV, "").strip().upper() or DEFAULT_REGION
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{REGION_ENV}={region!r} is not a region phonenumbers knows")
    return region


def email_key(email: str) -> str:
    """The duplicate-detection key of an email: case-insensitive."""
    return email.casefold()


def normalise_email(value: str) -> str:
    """Syntax-check an email (no DNS) and return its normalised form; raises ``ValueError``.

    A plain ASCII address (dot-atom local part of at most 64 characters, ASCII hostname,
    at most 254 characters) takes a fast path whose result is email-validator's own: its
    domain is checked by email-validator once per distinct domain (special-use names, TLD
    rules, label lengths...), the local part by a strict regex that only admits what
    email-validator accepts unchanged. Anything else, and any refusal, goes through
    email-validator in full, so its error messages are the ones reported.
    """
    match = _PLAIN_EMAIL.fullmatch(value) if len(value) <= _PLAIN_EMAIL_MAX else None
    if match is not None:
        local, domain = match.groups()
        if len(local) <= _PLAIN_LOCAL_MAX:
            normal_domain = _domain_memo.get(domain, "")
            if normal_domain == "":
                normal_domain = _normalise_domain(domain)
            if normal_domain is not None:
                if local.lower() in _CASE_INSENSITIVE_LOCAL:
                    local = local.lower()
                return f"{local}@{normal_domain}"
    return _validate_email_fully(value)


def _normalise_domain(domain: str) -> str | None:
    """email-validator's normal form of ``domain`` if it is plain ASCII there too, else None."""
    try:
        result = validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        normal = None
    else:
        # Only a domain that stays the same ASCII text (lower-cased) qualifies: IDNA forms
        # change length, which the whole-address length limits would then have to follow.
        normal = result.domain if result.domain == result.ascii_domain == domain.lower() else None
    if len(_domain_memo) >= _DOMAIN_MEMO_MAX:
        _domain_memo.clear()
    _domain_memo[domain] = normal
    return normal


def _validate_email_fully(value: str) -> str:
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    return str(result.normalized)


def normalise_phone(value: str, region: str | None = None) -> str:
    """Parse a phone number and return it in E.164 (plus `` ext. N``); raises ``ValueError``.

    Results are memoised per (text, region): phonenumbers is a pure function of them, and
    imports often repeat numbers (switchboards, shared lines)."""
    ok, text = _phone(value, region or default_region())
    if not ok:
        raise ValueError(text)
    return text


@lru_cache(maxsize=_PHONE_MEMO_MAX)
def _phone(value: str, region: str) -> tuple[bool, str]:
    try:
        return True, _normalise_phone(value, region)
    except ValueError as exc:
        return False, str(exc)


def _normalise_phone(value: str, region: str) -> str:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        reason = {
            phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "has an invalid country code",
            phonenumbers.NumberParseException.TOO_SHORT_NSN: "is too short",
            phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "is too short",
            phonenumbers.NumberParseException.TOO_LONG: "is too long",
        }.get(exc.error_type, "is not a phone number")
        raise ValueError(f"{reason} ({value!r})") from None
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible != phonenumbers.ValidationResult.IS_POSSIBLE:
        detail = {
            phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "lacks an area code",
            phonenumbers.ValidationResult.TOO_SHORT: "is too short",
            phonenumbers.ValidationResult.TOO_LONG: "is too long",
            phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "has an invalid country code",
        }.get(possible, "is not a possible number")
        raise ValueError(f"{detail} ({value!r})")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return f"{e164} ext. {number.extension}" if number.extension else e164


def normalise_birthday(value: str) -> str:
    """``YYYY-MM-DD`` or yearless ``--MM-DD`` (compact forms accepted); raises ``ValueError``."""
    match = _BIRTHDAY.match(value)
    message = "must be an ISO date YYYY-MM-DD (or --MM-DD without a year)"
    if not match:
        raise ValueError(message)
    year, month, day, ymonth, yday = match.groups()
    try:
        if year is not None:
            return date(int(year), int(month), int(day)).isoformat()
        date(2000, int(ymonth), int(yday))  # a leap year, so --02-29 is accepted
        return f"--{ymonth}-{yday}"
    except ValueError:
        raise ValueError(f"{message}; {value!r} is not a real date") from None


def phone_digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def validate_new(raw: Mapping[str, Any], *, region: str | None = None) -> dict[str, Any]:
    """Validate a whole new contact: every editable field, ``name`` required.

    The same result and errors as :func:`validate_new_general`, cheaper for the usual input
    (an import validates every row): only the fields given are looked at, and a printable
    string holds no line break or control character and, if ASCII, is already NFC, so it
    skips those checks. A contact with any problem is validated again the general way, so
    its errors are worded and ordered exactly as that path gives them.
    """
    if type(raw) is not dict or not raw.keys() <= _EDITABLE_SET:
        return validate_new_general(raw, region=region)
    errors: list[FieldError] = []
    out = dict(_NEW_DEFAULTS)
    for name, value in raw.items():
        if value is None:
            continue
        is_list, limit = _NEW_PLAN[name]
        if is_list:
            if type(value) is list and len(value) == 1:
                single = _single_item(name, value[0], limit, region)
                if single is not None:
                    out[name] = single
                    continue
            out[name] = _list_field(name, value, region, errors)
            continue
        if type(value) is str and value.isprintable():
            text = value.strip() if value.isascii() else unicodedata.normalize("NFC", value).strip()
            if text and len(text) <= limit and name != "birthday":
                out[name] = text
                continue
        out[name] = _field(name, value, region, errors)
    if errors or out["name"] is None:
        return validate_new_general(raw, region=region)  # words and orders the errors
    return out


_EDITABLE_SET = frozenset(EDITABLE_FIELDS)
_NEW_PLAN: dict[str, tuple[bool, int]] = {
    name: (True, MAX_ITEM_LENGTH[name]) if name in LIST_FIELDS else (False, MAX_TEXT_LENGTH[name])
    for name in EDITABLE_FIELDS
}
_NEW_DEFAULTS: dict[str, Any] = {
    name: () if name in LIST_FIELDS else None for name in EDITABLE_FIELDS
}


def _single_item(name: str, item: Any, limit: int, region: str | None) -> tuple[str] | None:
    """A list of one plain item (the usual import cell) as :func:`_list_field` gives it, or
    None if that item is blank or needs the general path (which then words any error)."""
    if type(item) is not str or not item.isprintable():
        return None
    text = item.strip() if item.isascii() else unicodedata.normalize("NFC", item).strip()
    if not text or len(text) > limit:
        return None
    try:
        if name == "emails":
            return (normalise_email(text),)
        if name == "phones":
            return (normalise_phone(text, region),)
    except ValueError:
        return None
    return None if ";" in text else (text,)


def validate_new_general(
    raw: Mapping[str, Any], *, region: str | None = None
) -> dict[str, Any]:
    """:func:`validate_new` without its fast paths: the reference it is tested against."""
    errors: list[FieldError] = []
    _check_keys(raw, errors)
    out: dict[str, Any] = {}
    for name in EDITABLE_FIELDS:
        value = raw.get(name)
        if name == "name" and (value is None or (isinstance(value, str) and not value.strip())):
            errors.append(FieldError("name", "is required"))
            continue
        out[name] = _field(name, value, region, errors, fast=False)
    if errors:
        raise ValidationError(errors)
    return out


def validate_patch(raw: Mapping[str, Any], *, region: str | None = None) -> dict[str, Any]:
    """Validate a merge patch: only the given fields; ``None`` (or empty) clears one."""
    errors: list[FieldError] = []
    _check_keys(raw, errors)
    out: dict[str, Any] = {}
    for name in EDITABLE_FIELDS:
        if name not in raw:
            continue
        value = raw[name]
        if name == "name" and value is None:
            errors.append(FieldError("name", "cannot be cleared"))
            continue
        if name == "name" and isinstance(value, str) and not value.strip():
            errors.append(FieldError("name", "is required"))
            continue
        out[name] = _field(name, value, region, errors)
    if errors:
        raise ValidationError(errors)
    return out


def _check_keys(raw: Mapping[str, Any], errors: list[FieldError]) -> None:
    if not isinstance(raw, Mapping):
        raise ValidationError.single("", "must be an object of contact fields")
    for key in raw:
        if key in READ_ONLY_FIELDS:
            errors.append(FieldError(str(key), "is set by the server and cannot be given"))
        elif key not in EDITABLE_FIELDS:
            errors.append(FieldError(_field_name(key), "unknown field"))


def _field_name(key: object) -> str:
    """An unknown key as an error may name it: as written if printable, else escaped
    (``ascii``), so the error itself can be encoded as UTF-8 JSON and read in a terminal."""
    if isinstance(key, str) and key.isprintable():
        return key
    return ascii(key) if isinstance(key, str) else str(key)


def _field(
    name: str, value: Any, region: str | None, errors: list[FieldError], *, fast: bool = True
) -> Any:
    if name in LIST_FIELDS:
        return _list_field(name, value, region, errors, fast=fast)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append(FieldError(name, "must be a string"))
        return None
    text = _clean_text(name, value, MAX_TEXT_LENGTH[name], name in MULTILINE_FIELDS, errors)
    if text is None or not text:
        return None
    if name == "birthday":
        try:
            return normalise_birthday(text)
        except ValueError as exc:
            errors.append(FieldError(name, str(exc)))
            return None
    return text


def _clean_text(
    path: str, value: str, limit: int, multiline: bool, errors: list[FieldError]
) -> str | None:
    surrogate = _SURROGATE.search(value)
    if surrogate is not None:
        errors.append(FieldError(path, f"must not contain a lone surrogate "
                                       f"(U+{ord(surrogate.group()):04X})"))
        return None
    text = unicodedata.normalize("NFC", value.replace("\r\n", "\n").replace("\r", "\n")).strip()
    if len(text) > limit:
        errors.append(FieldError(path, f"is too long ({len(text)} characters, at most {limit})"))
        return None
    pattern = _CONTROL if multiline else _CONTROL_SINGLE_LINE
    if pattern.search(text):
        what = "control characters" if multiline else "line breaks or control characters"
        errors.append(FieldError(path, f"must not contain {what}"))
        return None
    return text


def _list_field(
    name: str, value: Any, region: str | None, errors: list[FieldError], *, fast: bool = True
) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        errors.append(FieldError(name, "must be a list of strings"))
        return ()
    limit = MAX_ITEM_LENGTH[name]
    out: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        text: str | None
        if fast and type(item) is str and item.isprintable():
            # printable: no line break or control character; ASCII: already NFC
            text = item.strip() if item.isascii() else unicodedata.normalize("NFC", item).strip()
            if len(text) > limit:
                text = _clean_text(f"{name}[{index}]", item, limit, False, errors)
        elif not isinstance(item, str):
            errors.append(FieldError(f"{name}[{index}]", "must be a string"))
            continue
        else:
            text = _clean_text(f"{name}[{index}]", item, limit, False, errors)
        if not text:
            continue
        try:
            if name == "emails":
                text = normalise_email(text)
            elif name == "phones":
                text = normalise_phone(text, region)
            elif ";" in text:
                raise ValueError("must not contain ';'")
        except ValueError as exc:
            errors.append(FieldError(f"{name}[{index}]", str(exc)))
            continue
        key = text.casefold()
        if key not in seen:
            seen.add(key)
            out.append(text)
    if len(out) > MAX_ITEMS[name]:
        errors.append(FieldError(name, f"has {len(out)} items, at most {MAX_ITEMS[name]}"))
    return tuple(out)


MAX_CARD_CHARS = 1024 * 1024
"""A stored vCard holds at most this many characters (a photo of a few hundred kB fits)."""
CONTACT_ID_MAX = 200
_CONTACT_ID = re.compile(rf"(?!\.\.?\Z)[A-Za-z0-9._~@+=,:-]{{1,{CONTACT_ID_MAX}}}")
CONTACT_ID_RULE = (
    f"must be 1 to {CONTACT_ID_MAX} letters, digits or any of . _ ~ @ + = , : -, "
    "and not '.' or '..'"
)


def validate_contact_id(value: Any) -> str:
    """A contact id a client chose (an address-book client names the card it creates): the
    id is a URL path segment, a journal key and a CLI argument, so its alphabet is small."""
    if not isinstance(value, str) or not _CONTACT_ID.fullmatch(value):
        raise ValidationError.single("id", CONTACT_ID_RULE)
    return value


def validate_card(card: Any) -> Card:
    """Check a stored vCard's shape: a known version, content lines without line breaks
    that name their property, fields the model has, the size limit. Its content is the
    client's business: the lines are kept as written."""
    if not isinstance(card, Card):
        raise ValidationError.single("card", "must be a Card")
    errors: list[FieldError] = []
    if card.version not in CARD_VERSIONS:
        errors.append(FieldError("card.version", f"must be one of {', '.join(CARD_VERSIONS)}"))
    known = frozenset(("", *EDITABLE_FIELDS))
    for index, item in enumerate(card.lines):
        path = f"card.lines[{index}]"
        if item.field not in known:
            errors.append(FieldError(path, f"feeds the unknown field {item.field!r}"))
        if ":" not in item.line or _CONTROL_SINGLE_LINE.search(item.line.replace("\t", " ")):
            errors.append(FieldError(path, "must be one content line, NAME:value"))
        if _SURROGATE.search(item.line):
            errors.append(FieldError(path, "must not contain a lone surrogate"))
    if card.size() > MAX_CARD_CHARS:
        errors.append(FieldError("card", f"is larger than {MAX_CARD_CHARS} characters"))
    if errors:
        raise ValidationError(errors)
    return card
