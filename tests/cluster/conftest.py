"""Fixtures for the cluster tests: several real ``contacts serve`` processes on one schema.

Every instance is ``python -m contacts_cli.http`` on 127.0.0.1 and a free port (the service
tests' :class:`~tests.service.conftest.ServerProcess`), all on the same schema of the test
PostgreSQL, with a short registration TTL (``CLUSTER_TTL``) so that takeovers after a kill
take seconds; the default TTL (6 s) is the same code with a larger number. Every process is
stopped by its pid when the test ends, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from tests.conftest import drop_schemas, unique_schema
from tests.service.conftest import ServerProcess

CLUSTER_TTL = 2.0
"""Seconds an instance stays registered without renewing (tests only; default 6)."""

SETTLE_WITHIN = 30.0
"""The longest any loop of these tests waits for the cluster to converge (a bound on the
loop, not a timing assertion)."""


@dataclass
class Cluster:
    """``size`` instances of the service on one schema."""

    database_url: str
    schema: str
    data_dir: Path
    size: int
    env_extra: dict[str, str] = field(default_factory=dict)
    instances: list[ServerProcess] = field(default_factory=list)

    def start(self) -> Cluster:
        env = {"CONTACTS_CLUSTER_TTL": str(CLUSTER_TTL), "CONTACTS_QUERY_TIMEOUT": "3",
               **self.env_extra}
        for n in range(self.size):
            directory = self.data_dir / f"instance-{n}"
            directory.mkdir(parents=True, exist_ok=True)
            self.instances.append(ServerProcess(self.database_url, self.schema, directory,
                                                env_extra=env))
        for instance in self.instances:
            instance.start()
        return self

    @property
    def urls(self) -> list[str]:
        return [instance.url for instance in self.instances]

    def live_urls(self) -> list[str]:
        return [i.url for i in self.instances
                if i.process is not None and i.process.poll() is None]

    def pick(self, rng: random.Random) -> str:
        return rng.choice(self.live_urls())

    def stop(self) -> None:
        for instance in self.instances:
            if instance.process is not None and instance.process.poll() is None:
                instance.process.kill()
                instance.process.wait(timeout=30)

    async def owner_address(self, user: str) -> str | None:
        """The address of the instance holding ``user``'s lease now (None: nobody)."""
        async with await psycopg.AsyncConnection.connect(self.database_url) as conn:
            cur = await conn.execute(
                sql.SQL("SELECT i.address FROM {} l JOIN {} i ON i.id = l.owner "
                        "WHERE l.key = %s").format(
                    sql.Identifier(self.schema, "cluster_lease"),
                    sql.Identifier(self.schema, "cluster_instance")),
                [f"contacts-user/{user}"])
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    def instance_at(self, address: str) -> ServerProcess:
        return next(i for i in self.instances if i.url == f"http://{address}")


@pytest.fixture
def cluster_factory(database_url: str, tmp_path: Path) -> Iterator[Any]:
    """``cluster_factory(size, **env)`` starts a cluster; all are stopped and dropped after."""
    made: list[Cluster] = []

    def make(size: int, **env: str) -> Cluster:
        cluster = Cluster(database_url, unique_schema("cluster"), tmp_path / f"c{len(made)}",
                          size, env_extra=env)
        made.append(cluster)
        return cluster.start()

    try:
        yield make
    finally:
        for cluster in made:
            cluster.stop()
        with contextlib.suppress(Exception):
            asyncio.run(drop_schemas(database_url, [c.schema for c in made]))


async def retry_until_acknowledged(
    client: httpx.AsyncClient, method: str, url: str, *, attempts: int = 200,
    pause: float = 0.1, **kwargs: Any,
) -> httpx.Response | None:
    """Send until a non-503/504 answer or the attempts (and ``SETTLE_WITHIN``) run out;
    None if never answered. Only safe for idempotent requests (or with an Idempotency-Key)."""
    deadline = time.monotonic() + SETTLE_WITHIN
    for _ in range(attempts):
        with contextlib.suppress(httpx.TransportError):
            response = await client.request(method, url, **kwargs)
            if response.status_code not in (503, 504):
                return response
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(pause)
    return None


def subprocess_env(cluster: Cluster) -> dict[str, str]:
    """The environment for a ``contacts`` command on the cluster's database and schema."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CONTACTS_") and k != "DATABASE_URL"}
    env.update(DATABASE_URL=cluster.database_url, CONTACTS_DB_SCHEMA=cluster.schema,
               CONTACTS_DATA_DIR=str(cluster.data_dir / "cli"))
    return env
