"""Running the service: uvicorn around the app, graceful shutdown on SIGTERM and SIGINT.

The process is one instance of the cluster: the app's lifespan opens the backend, which
registers the instance with the address others forward to (``--advertise``, else the bound
address). On a signal uvicorn stops accepting connections and lets the requests in flight
finish; then the lifespan closes the backend: the instance drains, the actors stop after
their current command and release their users, the instance deregisters, the engine flushes
the journal, and an embedded PostgreSQL this process started is stopped.

``contacts serve --workers N`` runs N such processes on one port: :mod:`.workers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import signal
import socket
import threading
from collections.abc import Callable, Generator, Sequence

import uvicorn

from contacts_cli.http.workers import orphaned
from contacts_cli.process import tune_gc
from contacts_cli.service.settings import Settings

log = logging.getLogger("contacts_cli.http")

GRACEFUL_SHUTDOWN_SECONDS = 30


class _Server(uvicorn.Server):
    """uvicorn's server without re-raising the signal after a graceful shutdown.

    uvicorn re-raises the captured signal once it is done, which would kill the process before
    ``run_server`` returns; here a handled SIGTERM/SIGINT simply ends ``run_server``. The
    handlers stay installed afterwards, so a second SIGTERM while the process winds down does
    not kill it half-way.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, self.handle_exit)
        yield

    async def on_tick(self, counter: int) -> bool:
        """uvicorn's once-per-0.1 s check, plus: a worker whose supervisor is gone stops."""
        if counter % 10 == 0 and orphaned():
            log.error("the supervisor of this worker is gone; stopping")
            self.should_exit = True
        return await super().on_tick(counter)


def uvicorn_config(settings: Settings, *, log_level: str = "info",
                   address: str | None = None,
                   discovery_nonce: str | None = None) -> uvicorn.Config:
    """The uvicorn configuration: httptools and uvloop when installed, no access log, HTTPS
    when ``settings`` names a certificate and key.

    ``address``: where other instances reach this one (default: the advertised address);
    ``discovery_nonce``: the secret of the ``server.json`` announcing it, for ``/healthz``."""
    from contacts_cli.backends.local import LocalBackend
    from contacts_cli.http.app import create_app
    from contacts_cli.service.cluster import InstanceRole

    async def open_backend() -> LocalBackend:
        return await LocalBackend.open(settings, role=InstanceRole.server(settings, address))

    has = importlib.util.find_spec
    return uvicorn.Config(
        create_app(settings, open_backend=open_backend, discovery_nonce=discovery_nonce),
        host=settings.host,
        port=settings.port,
        http="httptools" if has("httptools") else "h11",
        loop="none",
        lifespan="on",
        access_log=False,
        log_level=log_level,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        ssl_certfile=settings.tls_certfile,
        ssl_keyfile=settings.tls_keyfile,
    )


async def serve(settings: Settings, *, log_level: str = "info",
                sockets: Sequence[socket.socket] | None = None,
                address: str | None = None, discovery_nonce: str | None = None) -> bool:
    """Serve until a signal; return False when startup failed (port taken, database down).

    ``sockets``: listening sockets bound by the caller (a worker's share of the public port
    and its private forwarding listener), else uvicorn binds ``settings.host:port``;
    ``discovery_nonce``: the secret of the ``server.json`` announcing this server, if any."""
    settings.check_bind()
    server = _Server(uvicorn_config(settings, log_level=log_level, address=address,
                                    discovery_nonce=discovery_nonce))
    await server.serve(sockets=list(sockets) if sockets is not None else None)
    return server.started


def run_server(
    settings: Settings | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    database_url: str | None = None,
    log_level: str = "info",
    sockets: Sequence[socket.socket] | None = None,
    address: str | None = None,
    discovery_nonce: str | None = None,
) -> int:
    """Run ``contacts serve`` in the foreground; return the process exit code (0 after a signal).

    ``settings`` defaults to :meth:`Settings.from_env`; the keyword arguments override it.
    Raises :class:`~contacts_cli.service.settings.SettingsError` before binding when the
    address is not loopback and neither an API token nor HTTPS is configured, or when the
    certificate cannot be loaded.
    """
    base = settings or Settings.from_env()
    overrides = {"host": host, "port": port, "database_url": database_url}
    settings = base.with_(**{k: v for k, v in overrides.items() if v is not None})
    settings.check_bind()
    tune_gc()
    runner: Callable[..., bool] = asyncio.run
    if importlib.util.find_spec("uvloop"):
        import uvloop

        runner = uvloop.run
    started = runner(serve(settings, log_level=log_level, sockets=sockets, address=address,
                           discovery_nonce=discovery_nonce))
    return 0 if started else 1
