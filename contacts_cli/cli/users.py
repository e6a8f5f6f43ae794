"""The account commands: ``contacts user add|passwd|rm NAME``.

An account is how a CardDAV client (or any HTTP client using Basic auth) logs in as the user
``NAME``; see :mod:`contacts_cli.accounts`. The password is asked twice on a terminal, without
echo; otherwise (or with ``--password-stdin``) it is the first line of stdin, so that it never
appears in a command line or the shell history. Client mode sends it to ``contacts serve``'s
admin routes (the service token, HTTPS unless the server is on this machine).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from contacts_cli.cli.exits import EXIT_FAILURE, EXIT_USAGE, ExitCodes, fail
from contacts_cli.cli.options import JsonOption
from contacts_cli.cli.render import Output
from contacts_cli.cli.runner import run

if TYPE_CHECKING:
    from contacts_cli.backends.base import ContactsBackend

HELP = ("Accounts: the user names and passwords CardDAV clients and HTTP Basic log in with. "
        "Logging in as NAME reaches NAME's contacts only.")

NameArg = Annotated[str, typer.Argument(
    metavar="NAME", help="The account's name: the user id whose contacts it may reach.")]
PasswordStdin = Annotated[bool, typer.Option(
    "--password-stdin",
    help="Read the password from the first line of stdin (the default when stdin is not a "
         "terminal).")]


def check_name(out: Output, name: str) -> str:
    """``name`` if it is a valid user id; else exit 2 saying what one may be."""
    from contacts_cli.service.ids import check_user_id

    with ExitCodes(out):
        return check_user_id(name)


def read_password(out: Output, from_stdin: bool) -> str:
    """The new password: from stdin's first line, or asked twice without echo on a terminal;
    checked against the password rules (exit 2 with the reason)."""
    from contacts_cli.accounts.passwords import check_password

    if from_stdin or not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise fail(out, "no password on stdin (give it as the first line)", EXIT_USAGE)
        password = line.removesuffix("\n").removesuffix("\r")
    else:
        import getpass

        password = getpass.getpass("New password: ")
        if getpass.getpass("Repeat it: ") != password:
            raise fail(out, "the two passwords differ; nothing changed", EXIT_USAGE)
    with ExitCodes(out):
        return check_password(password)


def _show(out: Output, account: dict[str, Any], verb: str) -> None:
    if out.json_mode:
        out.json(account)
    else:
        out.line(f"{verb} account {account['name']}")


SetPassword = Callable[["ContactsBackend", str, str], Awaitable[dict[str, Any]]]


def _with_password(ctx: typer.Context, name: str, from_stdin: bool, json_: bool,
                   call: SetPassword, verb: str) -> None:
    """Check ``name``, read the password, ``call`` the backend with both, show the account."""
    out = Output(json_mode=json_)
    check_name(out, name)
    password = read_password(out, from_stdin)

    async def job(backend: ContactsBackend) -> dict[str, Any]:
        return await call(backend, name, password)

    _show(out, run(ctx, out, job), verb)


def add(ctx: typer.Context, name: NameArg, password_stdin: PasswordStdin = False,
        json_: JsonOption = False) -> None:
    """Create an account (exit 4 if it exists).

    Example: printf '%s\\n' "$PASSWORD" | contacts user add alice --password-stdin
    """
    _with_password(ctx, name, password_stdin, json_,
                   lambda backend, *args: backend.add_account(*args), "created")


def passwd(ctx: typer.Context, name: NameArg, password_stdin: PasswordStdin = False,
           json_: JsonOption = False) -> None:
    """Change an account's password (exit 3 if there is no account).

    Clients still using the old password are refused from their next request on.
    """
    _with_password(ctx, name, password_stdin, json_,
                   lambda backend, *args: backend.set_password(*args), "changed the password of")


def rm(
    ctx: typer.Context,
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (for scripts).")] = False,
    json_: JsonOption = False,
) -> None:
    """Remove an account (exit 3 if there is none); the user's contacts stay."""
    out = Output(json_mode=json_)
    check_name(out, name)
    if not yes:
        if not sys.stdin.isatty():
            raise fail(out, "refusing to remove without confirmation: pass --yes", EXIT_USAGE)
        if not typer.confirm(f"Remove the account {name}? Its contacts stay.", err=True):
            raise fail(out, "nothing removed", EXIT_FAILURE)

    async def job(backend: ContactsBackend) -> dict[str, Any]:
        return await backend.remove_account(name)

    _show(out, run(ctx, out, job), "removed")
