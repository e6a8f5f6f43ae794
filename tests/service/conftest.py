"""Fixtures for the service tests: a LocalBackend on a real PostgreSQL schema, the ASGI app
in-process, and the service as a real subprocess on a free port.

PostgreSQL is never mocked: ``database_url`` and ``engine_factory`` (tests/conftest.py) give a
server (TEST_DATABASE_URL or an embedded one) and engines on fresh, uniquely named schemas.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from contacts_cli.backends.local import LocalBackend
from contacts_cli.http.app import create_app
from contacts_cli.service.settings import Settings
from tests.conftest import EngineFactory, drop_schemas, unique_schema

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path, snapshot_every=500)


@pytest.fixture
async def backend(settings: Settings, engine_factory: EngineFactory) -> AsyncIterator[LocalBackend]:
    engine = await engine_factory()
    opened = await LocalBackend.open(settings, engine=engine)
    yield opened
    await opened.close()


@pytest.fixture
async def client(backend: LocalBackend, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, backend)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """``python -m contacts_cli.http`` on a free port, on its own schema; restartable."""

    database_url: str
    schema: str
    data_dir: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    module: str = "contacts_cli.http"
    """The module run with ``python -m`` (tests/carddav runs the app with its authenticator)."""
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        inherited = {
            k: v for k, v in os.environ.items()
            if not k.startswith("CONTACTS_") and k != "DATABASE_URL"
        }
        env = {
            **inherited,
            "DATABASE_URL": self.database_url,
            "CONTACTS_DB_SCHEMA": self.schema,
            "CONTACTS_DATA_DIR": str(self.data_dir),
            "CONTACTS_PORT": str(self.port),
            "CONTACTS_HOST": "127.0.0.1",
            **self.env_extra,
        }
        self.log_path = self.data_dir / f"server-{time.monotonic_ns()}.log"
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"server did not become ready: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for the process to exit on its own (after a signal already sent)."""
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait: the graceful path."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(database_url, unique_schema("svc"), tmp_path)
    yield process
    if process.process is not None and process.process.poll() is None:
        process.kill()
    import asyncio

    with contextlib.suppress(Exception):
        asyncio.run(drop_schemas(database_url, [process.schema]))


def problem(response: httpx.Response) -> dict[str, Any]:
    """The problem+json body of an error response (asserting its media type)."""
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == response.status_code
    return body
