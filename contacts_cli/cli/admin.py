"""The operating commands: serve, stats and demo (the ``db`` group is :mod:`.db`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from contacts_cli.cli.exits import EXIT_FAILURE, EXIT_UNAVAILABLE, EXIT_USAGE, ExitCodes, fail
from contacts_cli.cli.options import JsonOption, options_of
from contacts_cli.cli.render import Output
from contacts_cli.cli.runner import run

if TYPE_CHECKING:
    from contacts_cli.backends.base import ContactsBackend
    from contacts_cli.cli.config import ServerInfo
    from contacts_cli.service.settings import Settings as ServiceSettings

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


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
    from contacts_cli.cli.demo import run_demo

    options = options_of(ctx)
    with ExitCodes(Output()):
        code = run_demo(options.database_url, options.data_dir, step)
    raise typer.Exit(code)


# -- serve -------------------------------------------------------------------------------------


def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(
        "--host", envvar="CONTACTS_HOST", help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(
        "--port", envvar="CONTACTS_PORT", min=1, max=65535,
        help="Port to bind (default 8765).")] = None,
    certfile: Annotated[Path | None, typer.Option(
        "--certfile", envvar="CONTACTS_TLS_CERTFILE", dir_okay=False,
        help="Serve HTTPS with this PEM certificate (chain); needs --keyfile.")] = None,
    keyfile: Annotated[Path | None, typer.Option(
        "--keyfile", envvar="CONTACTS_TLS_KEYFILE", dir_okay=False,
        help="The certificate's PEM private key.")] = None,
    log_level: Annotated[str, typer.Option(
        "--log-level", help="critical, error, warning, info or debug.")] = "info",
    workers: Annotated[int | None, typer.Option(
        "--workers", envvar="CONTACTS_WORKERS", min=1, max=64,
        help="Worker processes sharing the port, one instance each (default 1).")] = None,
    advertise: Annotated[str | None, typer.Option(
        "--advertise", envvar="CONTACTS_ADVERTISE", metavar="HOST:PORT",
        help="Where other instances reach this one (default: the bound address; with "
             "--workers, the host each worker's private port listens on).")] = None,
) -> None:
    """Run the HTTP service on the same actors; other `contacts` commands then use it.

    While it runs, it announces its URL and pid in the data directory, so every command
    run against the same data directory and database goes through it (client mode).
    A non-loopback --host needs CONTACTS_API_TOKEN or HTTPS (--certfile/--keyfile).
    Several instances (--workers, or other hosts) may share one database: each user is
    active on one of them, and any instance answers for any user.
    """
    import logging

    from contacts_cli.cli.config import ServerInfo, read_server_file
    from contacts_cli.cli.local import service_settings
    from contacts_cli.server_proof import new_nonce
    from contacts_cli.service.settings import SettingsError

    out = Output()
    options = options_of(ctx)
    if log_level.lower() not in LOG_LEVELS:
        raise fail(out, f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}",
                   EXIT_USAGE)
    log_level = log_level.lower()
    try:
        overrides = {"host": host, "port": port, "workers": workers, "advertise": advertise,
                     "tls_certfile": certfile, "tls_keyfile": keyfile}
        config = service_settings(options, reuse_embedded=True).with_(
            **{k: v for k, v in overrides.items() if v is not None})
        config.check_bind()
    except (SettingsError, ValueError) as exc:
        raise fail(out, str(exc), EXIT_USAGE) from None
    running = read_server_file(options.data_dir)
    if running is not None and running.pid != os.getpid():
        raise fail(out, f"a contacts serve (pid {running.pid}) already serves this data "
                        f"directory at {running.url}; stop it first", EXIT_FAILURE)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    url_host = f"[{config.host}]" if ":" in config.host else config.host
    scheme = "https" if config.tls else "http"
    info = ServerInfo(f"{scheme}://{url_host}:{config.port}", os.getpid(), options.database,
                      nonce=new_nonce())
    ok = _run_server(config, info, options.data_dir, log_level, out)
    raise typer.Exit(0 if ok else EXIT_UNAVAILABLE)


def _run_server(config: ServiceSettings, info: ServerInfo, data_dir: Path, log_level: str,
                out: Output) -> bool:
    """Serve until stopped; announce the server in ``data_dir`` once it accepts connections
    and withdraw the announcement when it stops. False if it could not serve."""
    import asyncio
    import importlib.util

    from contacts_cli.cli.config import remove_server_file, write_server_file
    from contacts_cli.http.server import serve as serve_http

    def announce() -> None:
        write_server_file(data_dir, info)
        workers = f", {config.workers} workers" if config.workers > 1 else ""
        out.message(f"contacts serve: listening on {info.url} (pid {info.pid}{workers}); "
                    f"commands on this data directory now use it")

    if config.workers > 1:
        return _run_workers(config, info, data_dir, log_level, out, announce)

    async def announce_when_listening() -> None:
        # uvicorn listens on the socket bound below only after the app's startup (engine,
        # actors) finished, so an accepted connection means the service is ready.
        while True:
            try:
                _, writer = await asyncio.open_connection(config.host, config.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            announce()
            return

    from contacts_cli.http.workers import bound_socket

    try:
        # Bound here, before anything starts: a taken port is the user's to fix (exit 2),
        # and the readiness check below can only reach this process's own socket.
        listener = bound_socket(config.host, config.port)
    except OSError as exc:
        raise fail(out, f"cannot listen on {config.host}:{config.port}: "
                        f"{exc.strerror or exc}", EXIT_USAGE) from None

    async def main() -> bool:
        announcer = asyncio.create_task(announce_when_listening())
        try:
            return await serve_http(config, log_level=log_level, sockets=[listener],
                                    discovery_nonce=info.nonce)
        except SystemExit:  # uvicorn's own exit (3) when the app's startup failed: the
            return False    # database could not be reached (exit 5 below, as documented)
        finally:
            announcer.cancel()
            remove_server_file(data_dir, info.pid)

    if importlib.util.find_spec("uvloop"):
        import uvloop

        return bool(uvloop.run(main()))
    return asyncio.run(main())


def _run_workers(config: ServiceSettings, info: ServerInfo, data_dir: Path, log_level: str,
                 out: Output, announce: Callable[[], None]) -> bool:
    """``serve --workers N``: supervise the workers; announce once one of them listens."""
    import socket

    from contacts_cli.cli.config import remove_server_file
    from contacts_cli.http.workers import EXIT_OK, supervise
    from contacts_cli.server_proof import NONCE_ENV

    announced = False
    os.environ[NONCE_ENV] = info.nonce  # the workers inherit it: each proves it on /healthz

    def announce_when_listening() -> None:
        # Each worker listens only once its app has started, so a connection means one serves.
        nonlocal announced
        if announced:
            return
        try:
            socket.create_connection((config.host, config.port), timeout=0.05).close()
        except OSError:
            return
        announced = True
        announce()

    try:
        code = supervise(config, config.workers, log_level=log_level,
                         on_tick=announce_when_listening)
    except OSError as exc:
        out.error(f"cannot listen on {info.url}: {exc}")
        return False
    finally:
        remove_server_file(data_dir, info.pid)
    return code == EXIT_OK
