"""The ``engine`` fixture: every contract test runs against each engine.

``memory`` always runs; ``postgres`` runs against ``TEST_DATABASE_URL`` and is skipped only
when that variable is unset; ``embedded`` always runs, on an embedded server.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
import pytest
from psycopg import sql

from persistence import Engine, InMemoryEngine
from persistence.embedded import EmbeddedPostgres
from persistence.placement import PlacementStore, Registration
from persistence.postgres import PostgresEngine
from tests.conftest import EngineFactory


@pytest.fixture(params=["memory", "postgres", "embedded"])
async def engine(
    request: pytest.FixtureRequest, engine_factory: EngineFactory
) -> AsyncIterator[Engine]:
    if request.param == "memory":
        async with InMemoryEngine() as memory:
            yield memory
        return
    yield await engine_factory(server_url(request))


def server_url(request: pytest.FixtureRequest) -> str:
    """The server of a ``postgres`` (``TEST_DATABASE_URL``, else skipped) or ``embedded``
    parameter."""
    if request.param == "postgres":
        url = os.environ.get("TEST_DATABASE_URL", "").strip()
        if not url:
            pytest.skip("TEST_DATABASE_URL is not set")
        return url
    embedded: EmbeddedPostgres = request.getfixturevalue("embedded_postgres")
    return embedded.url


async def expire_now(store: PlacementStore, registration: Registration) -> None:
    """Make the database judge ``registration`` expired from now on: its expiry moved into
    the past behind the store's back (no heartbeat runs in these tests). Tests use it rather
    than a TTL of a fraction of a second, which a stalled machine can outlive before the
    test has even used the registration."""
    async with await psycopg.AsyncConnection.connect(store.config.url, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("UPDATE {} SET expires_at = now() - interval '1 second' WHERE id = %s").format(
                store.names.instance
            ),
            [registration.instance_id],
        )
    rows = (await store.status()).instances
    assert not next(i for i in rows if i.instance_id == registration.instance_id).live


StoreFactory = Callable[..., Awaitable[PlacementStore]]
"""Opens a started placement store; keyword arguments go to :class:`PlacementStore`."""


@pytest.fixture
async def stores(request: pytest.FixtureRequest, engine: Engine) -> AsyncIterator[StoreFactory]:
    """Placement stores (each with its own pools) on the schema of the test's ``engine``:
    a module using it overrides ``engine`` with a PostgreSQL one. Every store opened is
    closed after the test."""
    assert isinstance(engine, PostgresEngine), "placement tests need a PostgreSQL engine"
    prefix = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    opened: list[PlacementStore] = []

    async def make(**options: float) -> PlacementStore:
        store = PlacementStore(
            engine.config, application_name=f"{prefix}-{len(opened)}", **options
        )
        opened.append(store)
        await store.start()
        return store

    yield make
    for store in opened:
        await store.close()
