"""PostgreSQL going away: readiness and writes answer 503, and the service heals when it is back.

This test runs its own embedded PostgreSQL (a real server, stopped and started again), so the
shared test database is never disturbed.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from contacts_cli.backends.local import LocalBackend
from contacts_cli.http.app import create_app
from contacts_cli.service.settings import Settings
from persistence.embedded import EmbeddedPostgres, start_embedded_async
from persistence.postgres import PostgresEngine
from tests.conftest import RUN_ID
from tests.service.conftest import problem

pytestmark = pytest.mark.slow


@pytest.fixture
async def private_server() -> AsyncIterator[EmbeddedPostgres]:
    # Not under tmp_path: a concurrent pytest run prunes other runs' base directories, which
    # deleted this server's data directory under it (see tests/conftest.py).
    directory = Path(tempfile.mkdtemp(prefix=f"pg-outage-{RUN_ID}-"))
    try:
        server = await start_embedded_async(directory, "test", stop_at_exit=True)
        try:
            yield server
        finally:
            await asyncio.to_thread(server.stop)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def restart(server: EmbeddedPostgres, attempts: int = 5) -> None:
    """Start the stopped server again (pg_ctl can fail transiently on a loaded machine)."""
    for attempt in range(1, attempts + 1):
        try:
            await asyncio.to_thread(server.start_server)
            return
        except Exception:
            if attempt == attempts:
                raise
            await asyncio.sleep(0.5 * attempt)


async def test_outage_is_503_and_the_service_recovers(
    private_server: EmbeddedPostgres, tmp_path: Path
) -> None:
    engine = PostgresEngine(private_server.url, schema="outage", connect_timeout=1.0)
    await engine.start()
    settings = Settings(database_url=private_server.url, data_dir=tmp_path, query_timeout=2.0,
                        restart_budget=100)
    backend = await LocalBackend.open(settings, engine=engine)
    app = create_app(settings, backend)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test") as client:
            first = await client.post("/api/u/contacts", json={"name": "Before"})
            assert first.status_code == 201

            await asyncio.to_thread(private_server.stop_server)
            not_ready = await client.get("/readyz")
            assert not_ready.status_code == 503
            problem(not_ready)
            write = await client.post("/api/u/contacts", json={"name": "During"})
            assert write.status_code == 503, write.text
            assert (await client.get("/healthz")).status_code == 200

            await restart(private_server)
            assert (await client.get("/readyz")).status_code == 200
            for _ in range(100):  # the user's actor comes back after its backoff
                response = await client.post("/api/u/contacts", json={"name": "After"})
                if response.status_code == 201:
                    break
                assert response.status_code in (503, 504), response.text
                await asyncio.sleep(0.1)
            assert response.status_code == 201
            names = [c["name"] for c in (await client.get("/api/u/contacts")).json()["items"]]
            assert names == ["After", "Before"]
    finally:
        await backend.close()
        await engine.close()
