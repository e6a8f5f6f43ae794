"""Session fixtures every test module can use to reach PostgreSQL.

* ``database_url``: ``TEST_DATABASE_URL`` when set, else the URL of ``embedded_postgres``;
* ``embedded_postgres``: an embedded server in a temporary directory, started once per
  session (only when a test asks for it) and stopped at the end; ``private_embedded()`` gives
  a private one (e.g. for a test that stops and restarts its server);
* ``engine_factory``: ``await engine_factory(url=None, **settings)`` starts a
  :class:`PostgresEngine` on a fresh, uniquely named schema (on ``database_url`` unless
  ``url`` is given); every schema it created is dropped after the test;
* ``pg_engine``: one such engine on ``database_url``.

Schema names carry a per-run id, so parallel runs and helpers never collide.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Protocol

import psycopg
import pytest
from psycopg import sql

from persistence.embedded import EmbeddedPostgres, start_embedded
from persistence.postgres import PostgresEngine

RUN_ID = uuid.uuid4().hex[:8]


def unique_schema(label: str = "t") -> str:
    """A schema name no other test or run uses."""
    return f"{label}_{RUN_ID}_{uuid.uuid4().hex[:10]}"


class EngineFactory(Protocol):
    async def __call__(
        self, url: str | None = None, *, schema: str | None = None, **settings: Any
    ) -> PostgresEngine: ...


@contextlib.contextmanager
def private_embedded(label: str = "embedded") -> Iterator[EmbeddedPostgres]:
    """An embedded server with a ``test`` database in a fresh temporary directory.

    Not under pytest's ``tmp_path``: pytest prunes old base directories of *other* runs,
    which would delete a data directory under a server still running for this one.
    The server is stopped and its directory removed on exit.
    """
    directory = Path(tempfile.mkdtemp(prefix=f"pg-{label}-{RUN_ID}-"))
    try:
        server = start_embedded(directory, "test", stop_at_exit=True)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_postgres() -> Iterator[EmbeddedPostgres]:
    with private_embedded() as server:
        yield server


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest) -> str:
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if url:
        return url
    embedded: EmbeddedPostgres = request.getfixturevalue("embedded_postgres")
    return embedded.url


async def drop_schemas(url: str, schemas: list[str]) -> None:
    """Drop test schemas through a connection of their own (the engines may be closed)."""
    if not schemas:
        return
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for schema in schemas:
            await conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


@pytest.fixture
async def engine_factory(database_url: str) -> AsyncIterator[EngineFactory]:
    engines: list[PostgresEngine] = []

    async def make(
        url: str | None = None, *, schema: str | None = None, **settings: Any
    ) -> PostgresEngine:
        settings.setdefault("pool_max_size", 4)
        engine = PostgresEngine(url or database_url, schema=schema or unique_schema(), **settings)
        engines.append(engine)
        await engine.start()
        return engine

    yield make
    by_url: dict[str, list[str]] = {}
    for engine in engines:
        await engine.close()
        by_url.setdefault(engine.config.url, []).append(engine.config.schema)
    for url, schemas in by_url.items():
        # A server a test stopped for good takes its schemas with its data directory.
        with contextlib.suppress(psycopg.OperationalError):
            await drop_schemas(url, sorted(set(schemas)))


@pytest.fixture
async def pg_engine(engine_factory: EngineFactory) -> PostgresEngine:
    return await engine_factory()
