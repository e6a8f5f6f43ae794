"""A script that uses ``LocalBackend`` and crashes part-way never hangs (issue 10).

Found this way: 10,000 creates over 100 users gathered at once, some rows invalid, and the
script never closes the backend. ``asyncio.run`` then cancels everything in flight, in the
middle of recoveries, persists and the connection pool's own work; it hung for ever (a
replay's read-ahead swallowed the cancellation, and psycopg_pool's workers survive one by
design). Each run is a fresh process, bounded in time, on a schema of its own.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import drop_schemas, unique_schema

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from contacts_cli.backends.local import LocalBackend
    from contacts_cli.service.settings import Settings

    async def main() -> None:
        backend = await LocalBackend.open(Settings(database_url=sys.argv[1], db_schema=sys.argv[2]))
        async def one(i: int) -> None:
            await backend.create(f"u{i % 100}", {"name": f"P{i}"} if i % 997 else {"name": 42})
        await asyncio.gather(*(one(i) for i in range(10_000)))

    try:
        asyncio.run(main())
    except Exception as exc:
        print("raised", type(exc).__name__)
""")


@pytest.mark.parametrize("run", range(3))
def test_a_crashing_script_returns_from_asyncio_run(database_url: str, run: int) -> None:
    schema = unique_schema("crash")
    try:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, database_url, schema],
            capture_output=True, text=True, timeout=90,
        )
    finally:
        asyncio.run(drop_schemas(database_url, [schema]))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "raised Invalid", (done.stdout, done.stderr[-2000:])
