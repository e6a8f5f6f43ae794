"""Fixtures for the CardDAV tests: the app in-process with a test authenticator, and the
service as a real process (for vdirsyncer, khard and the sync-collection client).

PostgreSQL is never mocked: the backend runs on a fresh schema (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from contacts_cli.backends.local import LocalBackend
from contacts_cli.http.app import create_app
from contacts_cli.service.settings import Settings
from tests.carddav.accounts import StaticAccounts
from tests.conftest import EngineFactory, drop_schemas, unique_schema
from tests.service.conftest import ServerProcess

USERS = {"alice": "wonderland", "bob": "builder"}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path, snapshot_every=500,
                    default_region="US")


@pytest.fixture
async def backend(settings: Settings, engine_factory: EngineFactory) -> AsyncIterator[LocalBackend]:
    engine = await engine_factory()
    opened = await LocalBackend.open(settings, engine=engine)
    yield opened
    await opened.close()


@pytest.fixture
async def dav(backend: LocalBackend, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app in-process, authenticated as alice."""
    app = create_app(settings, backend, carddav_authenticate=StaticAccounts(USERS))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test",
                                 auth=("alice", USERS["alice"])) as http:
        yield http


def dav_server_process(database_url: str, data_dir: Path) -> ServerProcess:
    """``python -m tests.carddav.server``: the service with CardDAV and the test accounts."""
    accounts = ",".join(f"{user}:{password}" for user, password in USERS.items())
    return ServerProcess(database_url, unique_schema("dav"), data_dir,
                         module="tests.carddav.server",
                         env_extra={"CARDDAV_TEST_ACCOUNTS": accounts,
                                    "CONTACTS_DEFAULT_REGION": "US"})


DavServer = ServerProcess


@pytest.fixture
def dav_server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    server = dav_server_process(database_url, tmp_path)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.terminate()
    import asyncio

    with contextlib.suppress(Exception):
        asyncio.run(drop_schemas(database_url, [server.schema]))
