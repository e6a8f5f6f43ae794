"""Fixtures for the CardDAV tests: the app in-process with a test authenticator, and the
service as a real process (for vdirsyncer, khard and the benchmark's clients).

PostgreSQL is never mocked: the backend runs on a fresh schema (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from contacts_cli.backends.local import LocalBackend
from contacts_cli.http.app import create_app
from contacts_cli.service.settings import Settings
from tests.carddav.accounts import StaticAccounts
from tests.conftest import EngineFactory, drop_schemas, unique_schema
from tests.service.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
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


@dataclass
class DavServer:
    """``python -m tests.carddav.server`` on a free port and its own schema."""

    database_url: str
    data_dir: Path
    schema: str = field(default_factory=lambda: unique_schema("dav"))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The environment the server and the CLI (in-process mode) share."""
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith("CONTACTS_") and k != "DATABASE_URL"}
        return {**inherited, "DATABASE_URL": self.database_url, "CONTACTS_DB_SCHEMA": self.schema,
                "CONTACTS_DATA_DIR": str(self.data_dir), "CONTACTS_DEFAULT_REGION": "US"}

    def start(self, timeout: float = 60.0) -> None:
        log = (self.data_dir / "dav-server.log").open("wb")
        env = {**self.env(), "CARDDAV_TEST_ACCOUNTS": ",".join(f"{u}:{p}" for u, p in
                                                               USERS.items())}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.carddav.server", str(self.port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"server did not become ready: {self.log()}")

    def log(self) -> str:
        path = self.data_dir / "dav-server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


@pytest.fixture
def dav_server(database_url: str, tmp_path: Path) -> Iterator[DavServer]:
    server = DavServer(database_url, tmp_path)
    server.start()
    yield server
    server.stop()
    import asyncio

    with contextlib.suppress(Exception):
        asyncio.run(drop_schemas(database_url, [server.schema]))
