"""The ``engine`` fixture: every contract test runs against each engine.

``memory`` always runs; ``postgres`` runs against ``TEST_DATABASE_URL`` and is skipped only
when that variable is unset; ``embedded`` always runs, on an embedded server.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from persistence import Engine, InMemoryEngine
from persistence.embedded import EmbeddedPostgres
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
