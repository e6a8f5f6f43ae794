"""The contact commands: add, list (ls), search, show, edit, rm, history.

Each command checks its arguments, hands the backend one job (:func:`~contacts_cli.cli.runner.run`
chooses in-process or client mode) and renders what comes back; both modes print the same.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from contacts_cli.cli.exits import EXIT_FAILURE, EXIT_NOT_FOUND, EXIT_USAGE, fail
from contacts_cli.cli.option_groups import CONTACT_FIELDS, PAGING, ContactData, Paging
from contacts_cli.cli.options import ExpectVersionOption, JsonOption, UserOption
from contacts_cli.cli.render import Output
from contacts_cli.cli.runner import run

if TYPE_CHECKING:
    from contacts_cli.backends.base import ContactsBackend

NameArg = Annotated[
    str | None, typer.Argument(metavar="[NAME]", help="The contact's name.", show_default=False)
]
IdArg = Annotated[str, typer.Argument(help="The contact's id (as `contacts ls` shows it).")]
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\w*\s*(?:ago)?\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (naive means local time), ``now``, or a duration ago (``90s``,
    ``5m``, ``2 hours ago``, ``3d``); raises ValueError saying what it accepts."""
    if text.strip().lower() == "now":
        return datetime.now(UTC)
    match = _RELATIVE.match(text)
    if match:
        amount, unit = float(match.group(1)), match.group(2).lower()
        return datetime.now(UTC) - timedelta(**{_UNITS[unit]: amount})
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r}: use ISO 8601 (2026-11-23T10:15:00Z), "
            "'now' or a duration ago such as '5m' or '2 hours ago'"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()
    return parsed


@CONTACT_FIELDS
def add(
    ctx: typer.Context,
    name_arg: NameArg = None,
    *,
    fields: ContactData,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="Retry-safe: the same key adds once."),
    ] = None,
    user: UserOption = "",
    json_: JsonOption = False,
) -> None:
    """Add a contact; prints it with its new id.

    Example: contacts add "Ada Lovelace" -e ada@example.org -p "+44 20 7946 0000" -l math
    """
    out = Output(json_mode=json_)
    name = fields.pop("name", None)
    if name_arg and name and name_arg != name:
        raise fail(out, "give the name once: as an argument or with --name", EXIT_USAGE)
    given = name_arg or name
    data = {"name": given, **fields} if given is not None else fields

    async def job(backend: ContactsBackend) -> dict[str, Any]:
        return await backend.create(user, data, idempotency_key=idempotency_key)

    out.contact(run(ctx, out, job))


def _list(ctx: typer.Context, out: Output, user: str, q: str | None, paging: Paging) -> None:
    """``list`` and ``search``: a page of contacts (or every page), then the next cursor."""
    async def job(backend: ContactsBackend) -> tuple[list[dict[str, Any]], str | None]:
        items: list[dict[str, Any]] = []
        next_cursor = paging.cursor
        while True:
            page = await backend.list(user, limit=paging.limit, cursor=next_cursor, q=q)
            items.extend(page["items"])
            next_cursor = page.get("next_cursor")
            if not paging.all or not next_cursor:
                return items, next_cursor

    items, next_cursor = run(ctx, out, job)
    out.contacts(items)
    if next_cursor:
        out.message(f"more contacts: --cursor {next_cursor} (or --all)")


@PAGING
def list_(ctx: typer.Context, *, paging: Paging, user: UserOption = "",
          json_: JsonOption = False) -> None:
    """List contacts, sorted by name (alias: ls)."""
    _list(ctx, Output(json_mode=json_), user, None, paging)


@PAGING
def search(
    ctx: typer.Context,
    terms: Annotated[list[str], typer.Argument(
        help='Search terms, all must match: a word matches any field, "a phrase" matches '
             'as written, field:term narrows to one field (name, email, phone, company, '
             'title, address, birthday, notes, label), e.g. label:work email:example.org.')],
    *,
    paging: Paging,
    user: UserOption = "",
    json_: JsonOption = False,
) -> None:
    """Find contacts with the service's term syntax."""
    _list(ctx, Output(json_mode=json_), user, " ".join(terms), paging)


def show(
    ctx: typer.Context,
    contact_id: IdArg,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", metavar="TIME",
        help="Show the contact as it was then: ISO 8601, or a duration ago (5m, 2h, 3d).",
    )] = None,
    user: UserOption = "",
    json_: JsonOption = False,
) -> None:
    """Show one contact, now or as it was at a past time."""
    out = Output(json_mode=json_)
    when: datetime | None = None
    if as_of is not None:
        try:
            when = parse_time(as_of)
        except ValueError as exc:
            raise fail(out, str(exc), EXIT_USAGE) from None

    async def job(backend: ContactsBackend) -> dict[str, Any] | None:
        if when is None:
            return await backend.get(user, contact_id)
        contacts: list[dict[str, Any]] = await backend.as_of(user, when)
        return next((c for c in contacts if c.get("id") == contact_id), None)

    contact = run(ctx, out, job)
    if contact is None:
        assert when is not None
        raise fail(out, f"contact {contact_id} did not exist at {when.isoformat()}",
                   EXIT_NOT_FOUND)
    out.contact(contact)


@CONTACT_FIELDS
def edit(
    ctx: typer.Context,
    contact_id: IdArg,
    *,
    fields: ContactData,
    clear: Annotated[list[str] | None, typer.Option(
        "--clear", metavar="FIELD",
        help="Clear a field: emails, phones, company, title, address, birthday, notes, "
             "labels (repeatable).")] = None,
    expect_version: ExpectVersionOption = None,
    user: UserOption = "",
    json_: JsonOption = False,
) -> None:
    """Change or clear fields of a contact."""
    out = Output(json_mode=json_)
    changes = fields
    for field_name in clear or []:
        if field_name in changes:
            raise fail(out, f"{field_name} is both set and cleared", EXIT_USAGE)
        changes[field_name] = None
    if not changes:
        raise fail(out, "nothing to change: give a field to set or --clear", EXIT_USAGE)

    async def job(backend: ContactsBackend) -> dict[str, Any]:
        return await backend.update(user, contact_id, changes, expected_version=expect_version)

    out.contact(run(ctx, out, job))


def rm(
    ctx: typer.Context,
    contact_ids: Annotated[list[str], typer.Argument(help="Ids of the contacts to remove.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (for scripts).")] = False,
    expect_version: ExpectVersionOption = None,
    user: UserOption = "",
    json_: JsonOption = False,
) -> None:
    """Remove contacts (asks first on a terminal; --yes for scripts)."""
    out = Output(json_mode=json_)
    if expect_version is not None and len(contact_ids) > 1:
        raise fail(out, "--expect-version applies to one contact at a time", EXIT_USAGE)
    if not yes:
        if not sys.stdin.isatty():
            raise fail(out, "refusing to remove without confirmation: pass --yes", EXIT_USAGE)
        what = contact_ids[0] if len(contact_ids) == 1 else f"{len(contact_ids)} contacts"
        if not typer.confirm(f"Remove {what} of {user}?", err=True):
            raise fail(out, "nothing removed", EXIT_FAILURE)

    async def job(backend: ContactsBackend) -> list[dict[str, Any]]:
        return [await backend.remove(user, cid, expected_version=expect_version)
                for cid in contact_ids]

    removed = run(ctx, out, job)
    if out.json_mode:
        out.json(removed[0] if len(removed) == 1 else removed)
    else:
        for contact in removed:
            label = contact.get("name") or contact.get("email") or ""
            out.line(f"removed {contact.get('id')} {label}".rstrip())


def history(
    ctx: typer.Context,
    contact_id: IdArg,
    user: UserOption = "",
    json_: JsonOption = False,
) -> None:
    """A contact's events, oldest first, as a timeline."""
    out = Output(json_mode=json_)

    async def job(backend: ContactsBackend) -> list[dict[str, Any]]:
        return await backend.history(user, contact_id)

    out.history(run(ctx, out, job))
