"""Any instance answers for any user: requests routed at random over two and three instances
on one database are all answered fresh, none fails because of where the user lives, and
every acknowledged write is there at the end, seen the same from every instance."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest

from tests.cluster.conftest import Cluster

pytestmark = pytest.mark.slow

USERS = 6
OPS_PER_USER = 40


async def _client_run(cluster: Cluster, user: str, seed: int) -> dict[str, dict[str, Any]]:
    """One client per user, one request at a time, each to a random instance; every answer
    is checked against what this client wrote before (it is the user's only writer)."""
    rng = random.Random(seed)
    path = f"/api/{user}/contacts"
    model: dict[str, dict[str, Any]] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for n in range(OPS_PER_USER):
            base = cluster.pick(rng)
            op = rng.choice(["create", "create", "patch", "get", "list"] if model
                            else ["create"])
            if op == "create":
                response = await client.post(base + path, json={"name": f"{user} {n}"},
                                             headers={"Idempotency-Key": f"{user}-{n}"})
                assert response.status_code == 201, (base, response.text)
                contact = response.json()
                model[contact["id"]] = contact
            elif op == "patch":
                contact_id = rng.choice(sorted(model))
                version = model[contact_id]["version"]
                response = await client.patch(f"{base}{path}/{contact_id}",
                                              json={"notes": f"edit {n}"},
                                              headers={"If-Match": f'"{version}"'})
                assert response.status_code == 200, (base, response.text)
                assert response.json()["version"] == version + 1
                model[contact_id] = response.json()
            elif op == "get":
                contact_id = rng.choice(sorted(model))
                response = await client.get(f"{base}{path}/{contact_id}")
                assert response.status_code == 200, (base, response.text)
                assert response.json() == model[contact_id], "a stale read"
            else:
                response = await client.get(base + path, params={"limit": 1000})
                assert response.status_code == 200, (base, response.text)
                assert {c["id"]: c for c in response.json()["items"]} == model, "stale list"
    return model


async def _run_and_check(cluster: Cluster, seed: int) -> None:
    users = [f"routed-{seed}-{u}" for u in range(USERS)]
    models = await asyncio.gather(*(_client_run(cluster, user, seed * 100 + i)
                                    for i, user in enumerate(users)))
    async with httpx.AsyncClient(timeout=30) as client:
        for user, model in zip(users, models, strict=True):
            for base in cluster.urls:
                response = await client.get(f"{base}/api/{user}/contacts",
                                            params={"limit": 1000})
                assert response.status_code == 200
                assert {c["id"]: c for c in response.json()["items"]} == model
        forwarded = hosted = 0
        for base in cluster.urls:
            stats = (await client.get(base + "/api/stats")).json()
            forwarded += stats["cluster"]["forwarded"]
            hosted += stats["cluster"]["users_hosted_here"]
            assert stats["cluster"]["instances_live"] == cluster.size
            metrics = (await client.get(base + "/metrics")).text
            assert f"contacts_cluster_instances_live {float(cluster.size)}" in metrics
            assert "contacts_cluster_serving 1.0" in metrics
            here = stats["cluster"]["users_hosted_here"]
            assert f"contacts_cluster_users_hosted {float(here)}" in metrics
    assert forwarded > 0, "random routing must have forwarded some requests"
    assert hosted == len(users), "each user is hosted on exactly one instance"


async def test_two_instances_answer_for_every_user(cluster_factory: Any) -> None:
    await _run_and_check(cluster_factory(2), seed=2)


async def test_three_instances_answer_for_every_user(cluster_factory: Any) -> None:
    cluster: Cluster = cluster_factory(3)
    await _run_and_check(cluster, seed=3)
    # Each user lives on exactly one instance; the leases say which, and all are live.
    owners = {await cluster.owner_address(f"routed-3-{u}") for u in range(USERS)}
    assert owners <= {url.removeprefix("http://") for url in cluster.urls}
