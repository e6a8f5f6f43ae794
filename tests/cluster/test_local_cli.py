"""``contacts --local`` takes part in the cluster: against a running server on the same
database it forwards to the instance hosting the user (no stale read, no 500), takes the
user's lease itself when nobody hosts it, and leaves no registration behind."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx
import pytest

from tests.cluster.conftest import Cluster, subprocess_env
from tests.service.conftest import ROOT

pytestmark = pytest.mark.slow

USER = "cli-user"


def contacts(cluster: Cluster, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "contacts_cli.cli.app", "--local", name, "-u", USER,
               *args]
    return subprocess.run(command, cwd=ROOT, env=subprocess_env(cluster), capture_output=True,
                          text=True, timeout=120)


async def test_local_commands_forward_to_the_owner(cluster_factory: Any) -> None:
    cluster: Cluster = cluster_factory(1)
    server = cluster.instances[0]
    path = f"{server.url}/api/{USER}/contacts"
    async with httpx.AsyncClient(timeout=30) as client:
        created = (await client.post(path, json={"name": "Ada", "notes": "v1"})).json()
        item = f"{path}/{created['id']}"
        assert (await client.patch(item, json={"notes": "v2"})).status_code == 200

        shown = contacts(cluster, "show", created["id"], "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["notes"] == "v2", "a stale read from the journal"

        edited = contacts(cluster, "edit", created["id"], "--notes", "from the cli")
        assert edited.returncode == 0, edited.stderr
        after = (await client.get(item)).json()
        assert after["notes"] == "from the cli" and after["version"] == 3

        stale = contacts(cluster, "edit", created["id"], "--notes", "x", "--expect-version", "2")
        assert stale.returncode == 4, stale.stderr
        assert (await client.get(item)).json()["version"] == 3

        # The server still answers from its activation and sees everything the CLI did.
        assert (await client.patch(item, json={"company": "ACME"})).json()["version"] == 4
        stats = (await client.get(f"{server.url}/api/stats")).json()
        assert stats["cluster"]["instances_live"] == 1, "a CLI registration was left behind"
    assert await cluster.owner_address(USER) == server.url.removeprefix("http://")


async def test_local_command_takes_a_free_user_and_releases_it(cluster_factory: Any) -> None:
    cluster: Cluster = cluster_factory(1)
    server = cluster.instances[0]
    added = contacts(cluster, "add", "Grace", "--json")
    assert added.returncode == 0, added.stderr
    contact = json.loads(added.stdout)
    assert await cluster.owner_address(USER) is None, "the CLI kept the user's lease"
    async with httpx.AsyncClient(timeout=30) as client:
        item = f"{server.url}/api/{USER}/contacts/{contact['id']}"
        assert (await client.get(item)).json()["name"] == "Grace"
