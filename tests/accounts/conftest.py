"""Fixtures for the accounts tests: a cheap argon2 hasher, a LocalBackend on a real
PostgreSQL schema (never mocked), the ASGI app in-process, and a self-signed certificate.

The cheap hasher (8 KiB, one pass) keeps in-process tests fast; the subprocess tests and
``test_hashing.py`` use argon2-cffi's real parameters.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from starlette.applications import Starlette

from contacts_cli.accounts.hashing import PasswordHashing
from contacts_cli.backends.local import LocalBackend
from contacts_cli.http.app import create_app
from contacts_cli.service.settings import Settings
from tests.conftest import EngineFactory

PASSWORD = "correct horse battery"


def cheap_hashing() -> PasswordHashing:
    return PasswordHashing(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path)


@pytest.fixture
async def backend(settings: Settings, engine_factory: EngineFactory) -> AsyncIterator[LocalBackend]:
    engine = await engine_factory()
    opened = await LocalBackend.open(settings, engine=engine, hashing=cheap_hashing())
    yield opened
    await opened.close()


def asgi_client(app: Starlette, *, base_url: str = "http://test",
                client: tuple[str, int] = ("127.0.0.1", 40000)) -> httpx.AsyncClient:
    """A client of ``app`` in this process, seen by the app as coming from ``client`` over
    ``base_url``'s scheme."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=client),
                             base_url=base_url)


@pytest.fixture
def app(backend: LocalBackend, settings: Settings) -> Starlette:
    return create_app(settings, backend)


def basic(name: str, password: str) -> dict[str, str]:
    """The ``Authorization`` header of HTTP Basic (RFC 7617, UTF-8)."""
    token = base64.b64encode(f"{name}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


@dataclass(frozen=True)
class Certificate:
    certfile: Path
    keyfile: Path


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for localhost and 127.0.0.1 (openssl, one day)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return Certificate(cert, key)


from tests.cli.conftest import cli_env  # noqa: E402, F401 (a fixture the CLI tests share)
