"""``contacts serve --workers N``: N worker processes on one port, each an instance of the
cluster, so one machine uses all its cores.

Each worker is a whole ``contacts serve`` process (its own event loop, actor system, engine
pool and registration). A user's actor lives in one worker at a time; a request that lands
on another worker is forwarded to it, exactly as between hosts (``docs/cluster.md``).

How the port is shared. uvicorn's own ``--workers`` binds one socket in the parent and
hands it to every child (``Server.serve(sockets=[...])``, or ``--fd``, which builds the
socket with ``socket.fromfd(fd, AF_UNIX, ...)`` whatever its family): all workers then
accept from one queue, and an asyncio server accepts up to ``backlog`` connections per
wake-up, so one worker can take a burst of keep-alive connections for itself. Here each
worker binds the public port itself with ``SO_REUSEPORT``: the kernel gives every worker its
own accept queue and spreads new connections across them, and a worker that dies takes only
its own queue with it. Each worker also listens on a private ``127.0.0.1:<ephemeral>`` port
(the ``--advertise`` host's, if given), registered as its address: that is where its
siblings (and other hosts) forward. Both sockets go to uvicorn with ``sockets=``; asyncio
calls ``listen()`` only once the app has started, so no connection reaches a worker that
cannot serve it yet.

The parent (:func:`supervise`) owns the port: it first binds it *without* ``SO_REUSEPORT``
(so a port already in use, even by another reuse-port server of this user, is refused
instead of silently shared), starts an embedded PostgreSQL once when no ``DATABASE_URL`` is
set, starts the workers in their own session (a Ctrl-C reaches the parent only, which turns
it into one SIGTERM per worker: a second SIGINT would make uvicorn skip its graceful
shutdown), restarts a worker that dies (a new instance; its users are taken over after their
TTL), gives up when workers keep dying as they start, and exits 0 after a signal once every
worker has stopped. A worker whose parent disappears stops on its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from contacts_cli.service.settings import Settings, SettingsError, is_loopback, join_address
from contacts_cli.service.settings import split_address as _split

log = logging.getLogger("contacts_cli.http.workers")

WORKER_FLAG = "--worker"
"""The hidden option of ``python -m contacts_cli.http`` that runs one worker."""

PARENT_ENV = "CONTACTS_WORKER_PARENT"
"""The supervisor's pid, in each worker's environment: a worker stops once it is orphaned."""

STARTUP_GRACE = 15.0
"""A worker that dies within this many seconds of its start counts as failing to start."""

START_FAILURES_ALLOWED = 3
"""Consecutive failed starts (of any worker) after which the supervisor gives up."""

RESTART_PAUSE = 0.5
STOP_WITHIN = 45.0
"""Seconds the workers get to shut down gracefully after a signal before being killed."""

EXIT_OK, EXIT_FAILURE, EXIT_UNAVAILABLE = 0, 1, 5


# -- the worker side ---------------------------------------------------------------------------


def worker_sockets(settings: Settings) -> tuple[list[socket.socket], str]:
    """The public socket (``SO_REUSEPORT``, shared with the other workers) and a private
    forwarding socket, both bound, not yet listening; and the private one's address."""
    private_host = _split(settings.advertise)[0] if settings.advertise else "127.0.0.1"
    if settings.api_token is None and not is_loopback(private_host):
        raise SettingsError(
            f"refusing to listen on {private_host!r} for forwarded requests without "
            "CONTACTS_API_TOKEN"
        )
    public = bound_socket(settings.host, settings.port, reuse_port=True)
    private = bound_socket(private_host, 0, reuse_port=False)
    port = private.getsockname()[1]
    return [public, private], join_address(private_host, port)


def bound_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening: uvicorn listens once the app
    has started, so a connection succeeds only when the service is ready)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.set_inheritable(False)
    except BaseException:
        sock.close()
        raise
    return sock


def orphaned() -> bool:
    """Whether this worker's supervisor is gone (its pid is no longer our parent)."""
    parent = os.environ.get(PARENT_ENV)
    return parent is not None and os.getppid() != int(parent)


# -- the supervisor ----------------------------------------------------------------------------


@dataclass
class _Worker:
    slot: int
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)


def check_port_free(host: str, port: int) -> None:
    """Raise ``OSError`` if ``host:port`` is in use (bound without ``SO_REUSEPORT``, so
    that another reuse-port server cannot pass for free)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def worker_environment(settings: Settings) -> dict[str, str]:
    """The environment of each worker: ours, with this invocation's settings on top (flags
    such as ``--database-url`` and ``--port`` are not in our environment)."""
    env = dict(os.environ)
    env.update(
        CONTACTS_HOST=settings.host,
        CONTACTS_PORT=str(settings.port),
        CONTACTS_DB_SCHEMA=settings.db_schema,
        CONTACTS_DATA_DIR=str(settings.data_dir),
        CONTACTS_WORKERS="1",
        **{PARENT_ENV: str(os.getpid())},
    )
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    if settings.advertise:
        env["CONTACTS_ADVERTISE"] = settings.advertise
    return env


class Supervisor:
    """Starts ``count`` workers, keeps them running, and stops them on a signal."""

    def __init__(self, settings: Settings, count: int, log_level: str) -> None:
        self.settings = settings
        self.count = count
        self.log_level = log_level
        self.workers: dict[int, _Worker] = {}
        self.stopping: int | None = None
        self.failed_starts = 0
        self.restarts = 0

    def _spawn(self, slot: int, env: dict[str, str]) -> None:
        command = [sys.executable, "-m", "contacts_cli.http", WORKER_FLAG,
                   "--log-level", self.log_level]
        process = subprocess.Popen(command, env=env, start_new_session=True)
        self.workers[slot] = _Worker(slot, process)
        log.info("worker %d started (pid %d)", slot, process.pid)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping is None:
            self.stopping = signum
            for worker in self.workers.values():
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGTERM)

    def run(self, on_tick: Callable[[], None] | None = None) -> int:
        """Supervise until a signal (0 once every worker stopped) or until workers keep
        failing to start (5 when none ever served, else 1). ``on_tick`` runs every 0.1 s."""
        env = worker_environment(self.settings)
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in range(self.count):
                self._spawn(slot, env)
            code = self._watch(env, on_tick)
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return code

    def _watch(self, env: dict[str, str], on_tick: Callable[[], None] | None) -> int:
        ever_served = False
        while self.stopping is None:
            time.sleep(0.1)
            if on_tick is not None:
                on_tick()
            for slot, worker in list(self.workers.items()):
                code = worker.process.poll()
                if code is None:
                    if time.monotonic() - worker.started > STARTUP_GRACE:
                        ever_served, self.failed_starts = True, 0
                    continue
                if self.stopping is not None:
                    break
                early = time.monotonic() - worker.started < STARTUP_GRACE
                self.failed_starts = self.failed_starts + 1 if early else 0
                log.error("worker %d (pid %d) exited with %s%s", slot, worker.process.pid,
                          code, " while starting" if early else "; starting a new one")
                if self.failed_starts >= START_FAILURES_ALLOWED:
                    log.error("workers keep failing as they start; giving up")
                    return EXIT_FAILURE if ever_served else EXIT_UNAVAILABLE
                time.sleep(RESTART_PAUSE * self.failed_starts)
                self.restarts += 1
                self._spawn(slot, env)
        return EXIT_OK

    def _stop_all(self) -> None:
        for worker in self.workers.values():
            if worker.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WITHIN
        for worker in self.workers.values():
            try:
                worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker %d did not stop in time; killing it", worker.slot)
                worker.process.kill()
                worker.process.wait(timeout=10)


def supervise(settings: Settings, count: int, *, log_level: str = "info",
              on_tick: Callable[[], None] | None = None) -> int:
    """Run ``count`` workers on ``settings.host:port``; the process exit code.

    Raises ``OSError`` if the port is in use and :class:`SettingsError` for a bad
    configuration, before any worker starts."""
    settings.check_bind()
    check_port_free(settings.host, settings.port)
    embedded = None
    if settings.database_url is None:
        from persistence.embedded import start_embedded

        embedded = start_embedded(settings.data_dir)
        log.info("%s", embedded.message)
        settings = settings.with_(database_url=embedded.url)
    try:
        log.info("serving on %s with %d workers", join_address(settings.host, settings.port),
                 count)
        return Supervisor(settings, count, log_level).run(on_tick)
    finally:
        if embedded is not None:
            embedded.stop()
