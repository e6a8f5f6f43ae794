"""A write from outside the service (an old version of it, a script) lands in a user's
journal behind the back of the instance hosting the user. The instance's next command meets
a ConcurrencyConflict: it recovers and re-runs the command once when the command named no
expected version (HTTP 200, the outside write kept), and answers 412 (HTTP, If-Match) or
exit 4 (CLI, --expect-version) when it named the version the outside write replaced. Never
a 500, never a lost write."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx
import pytest

from persistence.engine import NewEvent
from persistence.postgres import PostgresEngine
from tests.cluster.conftest import Cluster, subprocess_env
from tests.service.conftest import ROOT

pytestmark = pytest.mark.slow

USER = "conflicted"


async def write_behind_the_service(cluster: Cluster, contact: dict[str, Any]) -> None:
    """Append a copy of the user's last event, unfenced, as an outside writer would."""
    pid = f"contacts-user/{USER}"
    async with PostgresEngine(cluster.database_url, schema=cluster.schema) as engine:
        highest = await engine.highest_sequence_nr(pid)
        last = await anext(aiter(engine.replay(pid, highest, highest)))
        await engine.append(pid, [NewEvent(last.type, last.payload, last.version)], highest)


def cli_edit(cluster: Cluster, contact_id: str, version: int) -> subprocess.CompletedProcess[str]:
    """``contacts edit --expect-version`` through the server."""
    command = [sys.executable, "-m", "contacts_cli.cli.app", "--server", cluster.urls[0],
               "edit", contact_id, "-u", USER, "--company", "Cli",
               "--expect-version", str(version)]
    return subprocess.run(command, cwd=ROOT, env=subprocess_env(cluster), capture_output=True,
                          text=True, timeout=120)


async def test_outside_writes_are_recovered_from_never_a_500(cluster_factory: Any) -> None:
    cluster: Cluster = cluster_factory(1)
    base = f"{cluster.urls[0]}/api/{USER}/contacts"
    async with httpx.AsyncClient(timeout=30) as client:
        contact = (await client.post(base, json={"name": "Before"})).json()
        item = f"{base}/{contact['id']}"
        await client.patch(item, json={"notes": "v2"})

        await write_behind_the_service(cluster, contact)
        retried = await client.patch(item, json={"company": "ACME"})
        assert retried.status_code == 200, retried.text
        assert retried.json()["company"] == "ACME" and retried.json()["notes"] == "v2"

        version = retried.json()["version"]
        await write_behind_the_service(cluster, contact)
        stale = await client.patch(item, json={"company": "Other"},
                                   headers={"If-Match": f'"{version}"'})
        assert stale.status_code == 412, stale.text
        assert (await client.get(item)).json()["company"] == "ACME"

        current = (await client.get(item)).json()["version"]
        await write_behind_the_service(cluster, contact)
    refused = cli_edit(cluster, contact["id"], current)
    assert refused.returncode == 4, refused.stderr
