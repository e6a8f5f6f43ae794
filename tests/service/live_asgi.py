"""The ASGI app over a real :class:`LocalBackend` on a fresh PostgreSQL schema, driven from
synchronous code: hypothesis runs ``@given`` functions synchronously, so the app, its actors
and its engine live on an event loop of their own, running in a thread for as long as the
module's tests (the instance's registration is renewed between examples too); each example
sends its request to that loop and waits for the answer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
from argon2 import PasswordHasher

from contacts_cli.accounts.hashing import PasswordHashing
from contacts_cli.backends.local import LocalBackend
from contacts_cli.http.app import create_app
from contacts_cli.service.settings import Settings
from persistence.postgres import PostgresEngine
from tests.conftest import drop_schemas, unique_schema

T = TypeVar("T")

WITHIN = 120.0
"""Seconds one request may take before the test fails (a hang is a failure, not a wait)."""


class LiveAsgi:
    """One app, backend, engine and schema; :meth:`close` drops the schema."""

    def __init__(self, database_url: str, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-asgi",
                                       daemon=True)
        self.thread.start()
        self.database_url = database_url
        self.schema = unique_schema("hostile")
        settings = Settings(database_url=database_url, data_dir=data_dir, snapshot_every=500)
        self.engine = PostgresEngine(database_url, schema=self.schema, pool_max_size=4)
        self.run(self.engine.start())
        cheap = PasswordHashing(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        self.backend = self.run(LocalBackend.open(settings, engine=self.engine, hashing=cheap))
        self.app = create_app(settings, self.backend)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                        base_url="http://test", timeout=WITHIN)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(WITHIN)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.run(self.client.request(method, url, **kwargs))

    def close(self) -> None:
        try:
            self.run(self.client.aclose())
            self.run(self.backend.close())
            self.run(self.engine.close())
            self.run(drop_schemas(self.database_url, [self.schema]))
            self.run(_finish_leftovers())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=WITHIN)
            self.loop.close()


async def _finish_leftovers() -> None:
    """Let tasks cancelled at shutdown finish, as ``asyncio.run`` does."""
    current = asyncio.current_task()
    leftover = [task for task in asyncio.all_tasks() if task is not current]
    for task in leftover:
        task.cancel()
    await asyncio.gather(*leftover, return_exceptions=True)
