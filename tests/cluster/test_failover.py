"""Instances die and stall: kill -9 of a user's owner while clients write, and SIGSTOP of an
owner for longer than its registration lives, then SIGCONT (the zombie)."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from typing import Any

import httpx
import pytest

from tests.cluster.conftest import CLUSTER_TTL, SETTLE_WITHIN, Cluster, retry_until_acknowledged

pytestmark = pytest.mark.slow

USER = "failover-user"
PATH = f"/api/{USER}/contacts"


async def test_kill_9_of_the_owner_loses_nothing_acknowledged(cluster_factory: Any) -> None:
    cluster: Cluster = cluster_factory(3)
    owner = cluster.instances[0]
    async with httpx.AsyncClient(timeout=30) as client:
        first = await client.post(owner.url + PATH, json={"name": "seed"})
        assert first.status_code == 201
        assert await cluster.owner_address(USER) == owner.url.removeprefix("http://")
        others = [i.url for i in cluster.instances[1:]]

        sent: set[str] = {"seed"}
        acknowledged: dict[str, str] = {"seed": first.json()["id"]}
        refused: list[int] = []
        killed = asyncio.Event()

        async def writer(n: int) -> None:
            rng = random.Random(n)
            for k in range(30):
                name = f"w{n}-{k}"
                sent.add(name)
                key = {"Idempotency-Key": name}
                if k == 10 and n == 0:
                    owner.kill()
                    killed.set()
                base = rng.choice(others)
                try:
                    response = await client.post(base + PATH, json={"name": name}, headers=key)
                except httpx.TransportError:
                    continue
                if response.status_code == 201:
                    acknowledged[name] = response.json()["id"]
                else:
                    # Only "unavailable" is allowed while the owner is dead, never a 500.
                    assert response.status_code in (503, 504), response.text
                    assert response.status_code != 503 or response.headers["Retry-After"]
                    refused.append(response.status_code)
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(writer(n) for n in range(3)))
        assert killed.is_set()
        # The others serve the orphaned user again (a bounded wait, not a timing assertion).
        answered = await retry_until_acknowledged(client, "GET", others[0] + PATH,
                                                  params={"limit": 1000})
        assert answered is not None and answered.status_code == 200
        survivors = {c["name"]: c["id"] for c in answered.json()["items"]}
        assert await cluster.owner_address(USER) != owner.url.removeprefix("http://")

    # Nothing acknowledged is lost; nothing appears that no client sent.
    for name, contact_id in acknowledged.items():
        assert survivors.get(name) == contact_id, name
    assert set(survivors) <= sent
    assert len(survivors) == len(set(survivors.values()))
    # Writes after the takeover were acknowledged (the user is served elsewhere).
    assert any(name.endswith(("-29", "-28")) for name in acknowledged)


async def test_a_stopped_owner_lands_no_write_and_stops_serving(cluster_factory: Any) -> None:
    cluster: Cluster = cluster_factory(2)
    zombie, survivor = cluster.instances
    async with httpx.AsyncClient(timeout=30) as client:
        created = await client.post(zombie.url + PATH, json={"name": "Zed", "notes": "v1"})
        assert created.status_code == 201
        contact = created.json()
        item = f"{PATH}/{contact['id']}"
        assert zombie.process is not None
        zombie.process.send_signal(signal.SIGSTOP)
        try:
            # A write that reaches the stopped owner waits in its socket, unanswered.
            late = asyncio.create_task(client.patch(zombie.url + item, json={"notes": "late"},
                                                    timeout=CLUSTER_TTL * 4))
            await asyncio.sleep(CLUSTER_TTL * 1.5)
            # Past its TTL the survivor takes the user over and writes.
            taken = await retry_until_acknowledged(client, "PATCH", survivor.url + item,
                                                   json={"notes": "v2"},
                                                   headers={"If-Match": '"1"'})
            assert taken is not None and taken.status_code == 200, taken and taken.text
            assert taken.json()["version"] == 2
        finally:
            zombie.process.send_signal(signal.SIGCONT)
        answer = await late
        assert answer.status_code == 503, answer.text  # refused on resume, not applied
        # The resumed process answers nothing from its old memory: a read through it is
        # either refused while it rejoins or forwarded to the new owner (fresh).
        deadline = time.monotonic() + SETTLE_WITHIN
        seen: list[int] = []
        while time.monotonic() < deadline:
            response = await client.get(zombie.url + item)
            seen.append(response.status_code)
            if response.status_code == 200:
                assert response.json()["notes"] == "v2", "the zombie answered from memory"
                break
            assert response.status_code == 503, response.text
            await asyncio.sleep(0.1)
        assert seen[-1] == 200
        final = await client.get(survivor.url + item)
        history = (await client.get(survivor.url + item + "/history")).json()
    assert final.json()["notes"] == "v2" and final.json()["version"] == 2
    assert len(history) == 2
    assert all("late" not in str(event) for event in history), "the zombie landed a write"
