"""How a contact command reaches its backend: the choice of mode, and running the job.

:func:`run` opens the backend this invocation uses (HTTP to a ``contacts serve`` in client
mode, else the actor system in this process), runs the command's job with it, closes it and
turns errors into exit codes. Client mode imports neither the actors nor the storage, and
a short command runs without an event loop (starting one costs more than the command takes).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from contacts_cli.cli.exits import ExitCodes
from contacts_cli.cli.options import CliOptions, options_of
from contacts_cli.cli.render import Output

if TYPE_CHECKING:
    from contacts_cli.backends.base import ContactsBackend
    from contacts_cli.backends.http import HttpBackend

T = TypeVar("T")
Job = Callable[["ContactsBackend"], Awaitable[T]]

BackendFactory = Callable[[CliOptions], Awaitable["ContactsBackend"]]
backend_factory_override: BackendFactory | None = None
"""Tests substitute a backend factory here to exercise the rendering without a database."""


def http_backend(url: str, options: CliOptions, *, blocking: bool) -> HttpBackend:
    """Client mode's backend; ``blocking``: a synchronous HTTP client (no event loop)."""
    from contacts_cli.backends.http import HttpBackend

    return HttpBackend(url, timeout=options.timeout, blocking=blocking,
                       token=os.environ.get("CONTACTS_API_TOKEN") or None)


async def open_in_process(options: CliOptions) -> ContactsBackend:
    """The in-process backend (or the tests' substitute)."""
    if backend_factory_override is not None:
        return await backend_factory_override(options)
    from contacts_cli.cli.local import open_local_backend

    backend: ContactsBackend = await open_local_backend(options)
    return backend


async def _with_backend(job: Job[T], options: CliOptions,
                        backend: ContactsBackend | None = None) -> T:
    """Run ``job`` on ``backend`` (None: the in-process one, opened here), then close it."""
    if backend is None:
        backend = await open_in_process(options)
    try:
        return await job(backend)
    finally:
        await backend.close()


def _drive(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (client mode's blocking HTTP) without a loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise RuntimeError("a client-mode command waited on the event loop; run it with asyncio")


def run(ctx: typer.Context, out: Output, job: Job[T], *, event_loop: bool = False) -> T:
    """Open the backend, run ``job`` with it, close it, and turn errors into exit codes.

    Client mode drives a command without an event loop unless ``event_loop``: a long job
    that overlaps its requests with its own work (``contacts import``) gets one, and the
    asynchronous HTTP client. A server found through the data directory is used only once it
    proved it wrote the file (:func:`~contacts_cli.cli.config.check_announced`); one that does
    not (a listener squatting on its port) or does not answer its first request (it died
    without removing its file, its pid was reused) falls back to in-process mode: neither
    the token nor the command was sent. An explicit ``--server`` is never second-guessed."""
    options = options_of(ctx)
    with ExitCodes(out):
        url, announced = ((None, None) if backend_factory_override is not None
                          else options.resolve_server())
        discovered = announced is not None
        if announced is not None:
            from contacts_cli.cli.config import check_announced

            refused = check_announced(announced)
            if refused:
                out.message(f"note: the server announced at {url} {refused}; "
                            "running in-process")
                url = None
        if url:
            try:
                if event_loop:
                    import asyncio

                    return asyncio.run(_with_backend(
                        job, options, http_backend(url, options, blocking=False)))
                return _drive(_with_backend(
                    job, options, http_backend(url, options, blocking=True)))
            except Exception as exc:
                if not (discovered and getattr(exc, "first_request", False)):
                    raise
                out.message(f"note: the server announced at {url} does not answer; "
                            "running in-process")
        import asyncio

        return asyncio.run(_with_backend(job, options))
