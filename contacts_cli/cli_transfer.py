"""The batch commands: import and export (filled in once the domain's parsers land)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add import and export to ``app``."""
