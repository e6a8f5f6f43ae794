"""Operating commands: stats (serve, db and demo follow once the service lands)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from contacts_cli.cli_common import JsonOption, run
from contacts_cli.render import Output

if TYPE_CHECKING:
    from contacts_cli.backend import ContactsBackend


def register(app: typer.Typer) -> None:
    """Add the operating commands to ``app``."""

    @app.command(rich_help_panel="Operations")
    def stats(ctx: typer.Context, json_: JsonOption = False) -> None:
        """Live actors, events, snapshots and replay timings of the actor system."""
        out = Output(json_mode=json_)

        async def job(backend: ContactsBackend) -> dict[str, Any]:
            return await backend.stats()

        out.mapping(run(ctx, out, job))
