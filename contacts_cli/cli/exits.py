"""The CLI's exit codes, and the one place that turns an error into one.

Exit codes (documented in the README and ``contacts --help``):
0 success, 1 failure, 2 usage or invalid input, 3 not found, 4 conflict,
5 database (or service) unreachable, 130 interrupted (Ctrl-C).

Every command runs the work that can fail inside ``with ExitCodes(out):``; an error the
backends, the storage or PostgreSQL raise then becomes its exit code and one line on stderr.
Errors are recognised by class, and the storage's and psycopg's classes only when their
modules are already loaded, so that a client-mode command never imports them.
"""

from __future__ import annotations

import os
import sys
from types import TracebackType

import typer

from contacts_cli.cli.render import Output

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_UNAVAILABLE = range(6)
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "Exit codes: 0 success, 1 failure, 2 usage or invalid input, 3 not found, "
    "4 conflict (stale --expect-version), 5 database or service unreachable."
)


def fail(out: Output, message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    """Print ``message`` on stderr and return the Exit to raise."""
    out.error(message)
    return typer.Exit(code)


def exit_code_for(exc: BaseException) -> int | None:
    """The exit code for an error the backends or the storage raise, None if unexpected."""
    from contacts_cli.backends.base import BackendError

    if isinstance(exc, BackendError):
        return exc.exit_code
    io_errors = sys.modules.get("contacts_cli.io.errors")
    if io_errors is not None and isinstance(exc, io_errors.ContactsIOError):
        return EXIT_USAGE  # an unreadable or malformed input file
    errors = sys.modules.get("persistence.errors")
    if errors is not None:
        if isinstance(exc, errors.StorageUnavailable):
            return EXIT_UNAVAILABLE
        if isinstance(exc, errors.PersistenceError):
            return EXIT_FAILURE
    psycopg = sys.modules.get("psycopg")  # the db commands talk to PostgreSQL directly
    if psycopg is not None and isinstance(exc, psycopg.OperationalError):
        return EXIT_UNAVAILABLE
    if isinstance(exc, (ConnectionRefusedError, ConnectionResetError, TimeoutError)):
        return EXIT_UNAVAILABLE
    return None


def describe(exc: BaseException) -> str:
    """The line a user reads for a known error: the invalid fields, else its message."""
    from contacts_cli.backends.base import Invalid

    if isinstance(exc, Invalid) and exc.errors:
        return "invalid input: " + "; ".join(f"{f}: {m}" if f else m for f, m in exc.errors)
    return str(exc) or type(exc).__name__


class ExitCodes:
    """``with ExitCodes(out):`` ends the command with the exit code of what the body raised.

    A known error prints its description; Ctrl-C prints ``interrupted`` (130); an unexpected
    error prints its type and message (exit 1), or its traceback with ``CONTACTS_DEBUG`` set.
    ``typer.Exit``, ``SystemExit`` and a closed pipe pass through unchanged.
    """

    def __init__(self, out: Output) -> None:
        self.out = out

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if exc is None or isinstance(exc, (typer.Exit, BrokenPipeError)):
            return
        if isinstance(exc, KeyboardInterrupt):
            raise fail(self.out, "interrupted", EXIT_INTERRUPTED) from None
        if not isinstance(exc, Exception):
            return
        code = exit_code_for(exc)
        if code is not None:
            raise fail(self.out, describe(exc), code) from None
        if os.environ.get("CONTACTS_DEBUG"):
            return
        raise fail(self.out, f"{type(exc).__name__}: {exc} (set CONTACTS_DEBUG=1 for a "
                             "traceback)", EXIT_FAILURE) from None
