"""A linearizability check over a randomized run on three instances.

Concurrent clients send writes (PATCH, each acknowledged with the contact's new version) and
reads (GET) for a few contacts, each to a random instance, recording every operation's
invocation and completion times. Afterwards the history is checked:

* no read returns a version older than one acknowledged before the read began (no stale
  read, whichever instance answered);
* no two acknowledged writes of a contact carry the same version (one writer at a time);
* every read returns a version that some write produced, with the value that write sent.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.cluster.conftest import Cluster

pytestmark = pytest.mark.slow

CONTACTS = 3
CLIENTS = 8
OPS_PER_CLIENT = 60


@dataclass(frozen=True)
class Op:
    kind: str
    contact: str
    invoked: float
    completed: float
    version: int
    value: str | None


async def test_no_read_is_older_than_an_acknowledged_write(cluster_factory: Any) -> None:
    cluster: Cluster = cluster_factory(3)
    users = ["lin-a", "lin-b"]
    contacts: list[tuple[str, str]] = []
    written: dict[tuple[str, int], str] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for n in range(CONTACTS):
            user = users[n % len(users)]
            response = await client.post(f"{cluster.urls[n % 3]}/api/{user}/contacts",
                                         json={"name": f"L{n}", "notes": "v1"})
            assert response.status_code == 201
            contacts.append((user, response.json()["id"]))
            written[(response.json()["id"], 1)] = "v1"
        history: list[Op] = []

        async def run(seed: int) -> None:
            rng = random.Random(seed)
            for k in range(OPS_PER_CLIENT):
                user, contact_id = rng.choice(contacts)
                url = f"{cluster.pick(rng)}/api/{user}/contacts/{contact_id}"
                value = f"c{seed}-{k}"
                invoked = time.monotonic()
                if rng.random() < 0.4:
                    response = await client.patch(url, json={"notes": value})
                    kind = "write"
                else:
                    response = await client.get(url)
                    kind, value = "read", None
                completed = time.monotonic()
                assert response.status_code == 200, response.text
                body = response.json()
                history.append(Op(kind, contact_id, invoked, completed, body["version"],
                                  body["notes"]))

        await asyncio.gather(*(run(seed) for seed in range(CLIENTS)))

    writes = [op for op in history if op.kind == "write"]
    reads = [op for op in history if op.kind == "read"]
    assert writes and reads
    versions = [(op.contact, op.version) for op in writes]
    assert len(versions) == len(set(versions)), "two writes acknowledged the same version"
    for op in writes:
        assert op.value is not None
        written[(op.contact, op.version)] = op.value
    for read in reads:
        acknowledged_before = [w.version for w in writes
                               if w.contact == read.contact and w.completed < read.invoked]
        floor = max(acknowledged_before, default=1)
        assert read.version >= floor, f"stale read: {read} after version {floor} was acked"
        assert written.get((read.contact, read.version)) == read.value, read
