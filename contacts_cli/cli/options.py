"""The CLI's options: the global ones (resolved once into :class:`CliOptions`) and those
several commands declare (``--user``, ``--json``, ``--expect-version``).

Precedence is flag > environment > ``.env`` (see :mod:`contacts_cli.cli.config`).
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from contacts_cli.cli.config import ServerInfo, database_identity, discover_server


@dataclass
class CliOptions:
    """The global options of one invocation, set by the root callback before any command."""

    data_dir: Path
    server: str | None = None
    local: bool = False
    database_url: str | None = None
    timeout: float = 30.0

    @property
    def database(self) -> str:
        """Which database and schema this invocation stores in (to match a running server)."""
        return database_identity(self.database_url, self.data_dir)

    def resolve_server(self) -> tuple[str | None, ServerInfo | None]:
        """``(url, announced)``: the server to use and, when it was found in the data
        directory rather than given, its announcement (to be proven before use);
        ``(None, None)`` for in-process mode."""
        if self.local:
            return None, None
        if self.server:
            return self.server, None
        found = discover_server(self.data_dir, self.database)
        return (found.url if found else None), found

    @classmethod
    def defaults(cls) -> CliOptions:
        """The options of an invocation that gave none (the default data directory)."""
        from contacts_cli.service.settings import default_data_dir

        return cls(data_dir=default_data_dir())


def options_of(ctx: typer.Context) -> CliOptions:
    """The global options the root callback stored on the root context."""
    options = ctx.find_root().obj
    return options if isinstance(options, CliOptions) else CliOptions.defaults()


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
ExpectVersionOption = Annotated[int | None, typer.Option(
    "--expect-version", min=0,
    help="Refuse (exit 4) unless the contact is still at this version.")]
