"""The URL layout of the CardDAV service and its sync tokens.

::

    /.well-known/carddav              -> 301 to /dav/ (RFC 6764)
    /dav/                             the service root: names the current user's principal
    /dav/<user>/                      the user's principal and address-book home
    /dav/<user>/contacts/             the user's one address book
    /dav/<user>/contacts/<id>.vcf     one contact as a vCard; <id> is the contact's id

A contact created through the CLI or REST has a UUID as its id; one an address-book client
creates gets the name the client chose for it (less ``.vcf``), so the card lives at the URL
the client PUT it to. Hrefs are written percent-encoded as vdirsyncer normalises them
(everything but unreserved characters, ``/`` and ``@``), and read percent-decoded.

A sync token is ``http://contacts.invalid/sync/<user>/<n>``, ``n`` the user's journal
sequence number (``.invalid`` is a reserved name: nobody dereferences it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from contacts_cli.carddav.davxml import DavError, q
from contacts_cli.domain import ValidationError, validate_contact_id
from contacts_cli.service.ids import USER_ID

ROOT = "/dav/"
BOOK = "contacts"
CARD_SUFFIX = ".vcf"
TOKEN_PREFIX = "http://contacts.invalid/sync/"
_TOKEN = re.compile(r"http://contacts\.invalid/sync/([^/]+)/(0|[1-9][0-9]{0,18})")

Kind = Literal["root", "principal", "book", "card"]


@dataclass(frozen=True, slots=True)
class Target:
    """What a request path names: its kind, whose it is, and the contact id of a card
    (``problem`` says why a card's name can be no contact id: 400 for a PUT, else 404)."""

    kind: Kind
    user: str = ""
    contact_id: str = ""
    problem: str = ""


def principal_url(user: str) -> str:
    return f"{ROOT}{user}/"


def book_url(user: str) -> str:
    return f"{ROOT}{user}/{BOOK}/"


def card_url(user: str, contact_id: str) -> str:
    return quote(f"{ROOT}{user}/{BOOK}/{contact_id}{CARD_SUFFIX}", safe="/@")


def parse_path(path: str) -> Target | None:
    """The target of a request path (already percent-decoded), ``None`` if it names none."""
    if not path.startswith(ROOT.rstrip("/")):
        return None
    parts = [p for p in path[len(ROOT) - 1:].split("/") if p]
    if not parts:
        return Target("root")
    user = parts[0]
    if not USER_ID.fullmatch(user):
        return None
    if len(parts) == 1:
        return Target("principal", user)
    if parts[1] != BOOK:
        return None
    if len(parts) == 2:
        return Target("book", user)
    if len(parts) == 3:
        contact_id, problem = card_id(parts[2])
        return Target("card", user, contact_id, problem)
    return None


def card_id(name: str) -> tuple[str, str]:
    """The contact id a card's resource name stands for, or why it can be none (a card is
    named ``<id>.vcf``, the id in the contact id alphabet)."""
    if not name.endswith(CARD_SUFFIX):
        return "", f"a card's name must end in {CARD_SUFFIX}, not {name[:100]!r}"
    try:
        return validate_contact_id(name[: -len(CARD_SUFFIX)]), ""
    except ValidationError as exc:
        return "", f"card name {name[:100]!r}: {exc.errors[0].message}"


def target_of_href(text: str | None) -> Target | None:
    """The target an href in a request body names (absolute or path, percent-encoded)."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("/") and not text.startswith("//") and "?" not in text and "#" not in text:
        return parse_path(unquote(text))  # a bare path, as clients send them: no split needed
    return parse_path(unquote(urlsplit(text).path))


def sync_token(user: str, sequence_nr: int) -> str:
    return f"{TOKEN_PREFIX}{user}/{sequence_nr}"


def parse_sync_token(user: str, token: str | None) -> int | None:
    """The sequence number in ``token`` (``None`` for an empty one: the first sync); another
    user's or a malformed token is refused with ``DAV:valid-sync-token``."""
    if token is None or not token.strip():
        return None
    match = _TOKEN.fullmatch(token.strip())
    if match is None or match.group(1) != user:
        raise DavError(403, f"{token.strip()[:200]!r} is not a sync token of this address book",
                       q("DAV:", "valid-sync-token"))
    return int(match.group(2))
