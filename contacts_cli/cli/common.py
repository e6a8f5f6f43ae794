"""What every CLI command shares: global settings, the choice of mode, and exit codes.

Exit codes (documented in the README and ``contacts --help``):
0 success, 1 failure, 2 usage or invalid input, 3 not found, 4 conflict,
5 database (or service) unreachable.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from contacts_cli.cli.config import database_identity, default_data_dir, discover_server
from contacts_cli.cli.render import Output

if TYPE_CHECKING:
    from contacts_cli.backends.base import ContactsBackend

T = TypeVar("T")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_UNAVAILABLE = range(6)

EXIT_CODES_HELP = (
    "Exit codes: 0 success, 1 failure, 2 usage or invalid input, 3 not found, "
    "4 conflict (stale --expect-version), 5 database or service unreachable."
)


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        return "default"


UserOption = Annotated[
    str,
    typer.Option(
        "--user", "-u", envvar="CONTACTS_USER", show_envvar=True,
        help="Whose contacts (one persistent actor per user). Default: your login name.",
        callback=lambda value: value or _default_user(), show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print plain JSON on stdout (for scripts).")
]


@dataclass
class Settings:
    """The global options, resolved once by the root callback (flag > env > .env)."""

    server: str | None = None
    local: bool = False
    database_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    timeout: float = 30.0

    @property
    def database(self) -> str:
        """Which database and schema this invocation stores in (to match a running server)."""
        return database_identity(self.database_url, self.data_dir)

    def server_url(self) -> str | None:
        """The URL client mode talks to, or None for in-process mode."""
        return self.resolve_server()[0]

    def resolve_server(self) -> tuple[str | None, bool]:
        """``(url, discovered)``: the server to use and whether it was found, not given."""
        if self.local:
            return None, False
        if self.server:
            return self.server, False
        found = discover_server(self.data_dir, self.database)
        return found, found is not None


# Tests substitute a backend factory here to exercise the rendering without a database.
BackendFactory = Callable[[Settings], Awaitable["ContactsBackend"]]
backend_factory_override: BackendFactory | None = None


def settings_of(ctx: typer.Context) -> Settings:
    obj = ctx.find_root().obj
    if isinstance(obj, Settings):
        return obj
    return Settings()


def http_backend(url: str, settings: Settings, *, blocking: bool) -> Any:
    from contacts_cli.backends.http import HttpBackend

    return HttpBackend(url, timeout=settings.timeout, blocking=blocking,
                       token=os.environ.get("CONTACTS_API_TOKEN") or None)


async def open_backend(settings: Settings, url: str | None) -> ContactsBackend:
    """The backend for this invocation: HTTP to ``url`` if given, else in-process."""
    if backend_factory_override is not None:
        return await backend_factory_override(settings)
    if url:
        backend: ContactsBackend = http_backend(url, settings, blocking=False)
        return backend
    from contacts_cli.cli.local import open_local_backend

    return await open_local_backend(settings)


def drive(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (client mode's blocking HTTP) without a loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise RuntimeError("a client-mode command waited on the event loop; run it with asyncio")


def fail(out: Output, message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    """Print ``message`` on stderr and return the Exit to raise."""
    out.error(message)
    return typer.Exit(code)


def exit_code_for(exc: BaseException) -> int | None:
    """The exit code for an error the backends or the storage raise, None if unexpected."""
    from contacts_cli.backends.base import BackendError

    if isinstance(exc, BackendError):
        return exc.exit_code
    errors = sys.modules.get("persistence.errors")
    if errors is not None:
        if isinstance(exc, errors.StorageUnavailable):
            return EXIT_UNAVAILABLE
        if isinstance(exc, errors.PersistenceError):
            return EXIT_FAILURE
    if isinstance(exc, (ConnectionRefusedError, ConnectionResetError, TimeoutError)):
        return EXIT_UNAVAILABLE
    return None


def describe(exc: BaseException) -> str:
    from contacts_cli.backends.base import Invalid

    if isinstance(exc, Invalid) and exc.errors:
        return "invalid input: " + "; ".join(f"{f}: {m}" if f else m for f, m in exc.errors)
    return str(exc) or type(exc).__name__


def run(ctx: typer.Context, out: Output, job: Callable[[ContactsBackend], Awaitable[T]], *,
        event_loop: bool = False) -> T:
    """Open the backend, run ``job`` with it, close it, and turn errors into exit codes.

    Client mode drives a command without an event loop (starting one costs more than a short
    command takes) unless ``event_loop``: a long job that overlaps its requests with its own
    work (``contacts import``) gets one, and the asynchronous HTTP client."""
    settings = settings_of(ctx)

    async def main(backend: ContactsBackend | None = None) -> T:
        if backend is None:
            backend = await open_backend(settings, None)
        try:
            return await job(backend)
        finally:
            await backend.close()

    try:
        url, discovered = (settings.resolve_server() if backend_factory_override is None
                           else (None, False))
        if url:
            try:
                if event_loop:
                    import asyncio

                    return asyncio.run(main(http_backend(url, settings, blocking=False)))
                return drive(main(http_backend(url, settings, blocking=True)))
            except Exception as exc:
                # A discovered server that refuses connections (it died without removing its
                # file, its pid was reused) must not stop in-process work: nothing was sent.
                if not (discovered and getattr(exc, "first_request", False)):
                    raise
                out.message(f"note: the server announced at {url} does not answer; "
                            "running in-process")
        import asyncio

        return asyncio.run(main())
    except (typer.Exit, BrokenPipeError):
        raise
    except KeyboardInterrupt:
        out.error("interrupted")
        raise typer.Exit(130) from None
    except Exception as exc:
        code = exit_code_for(exc)
        if code is None:
            if os.environ.get("CONTACTS_DEBUG"):
                raise
            code = EXIT_FAILURE
            out.error(f"{type(exc).__name__}: {exc} (set CONTACTS_DEBUG=1 for a traceback)")
        else:
            out.error(describe(exc))
        raise typer.Exit(code) from None
