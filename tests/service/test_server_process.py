"""The service as a real process: restarts keep everything, kill -9 loses nothing acknowledged.

Each test runs ``python -m contacts_cli.http`` on a free port against its own schema of the
test PostgreSQL, stops it (SIGTERM or SIGKILL) and starts a new process on the same schema.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import httpx
import pytest

from tests.service.conftest import ROOT, ServerProcess

pytestmark = pytest.mark.slow

USER = "/api/restart-user/contacts"


def all_contacts(client: httpx.Client, path: str = USER) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = client.get(path, params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_ids_and_contents_survive_a_graceful_restart(server: ServerProcess) -> None:
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        created = [
            client.post(USER, json={"name": f"Person {i}", "emails": [f"p{i}@example.com"]},
                        headers={"Idempotency-Key": f"k{i}"}).json()
            for i in range(20)
        ]
        client.patch(f"{USER}/{created[0]['id']}", json={"company": "ACME"})
        client.delete(f"{USER}/{created[1]['id']}")
        before = all_contacts(client)
        history = client.get(f"{USER}/{created[1]['id']}/history").json()
    assert server.terminate() == 0, server.log()

    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert all_contacts(client) == before
        assert client.get(f"{USER}/{created[1]['id']}/history").json() == history
        retried = client.post(USER, json={"name": "Person 5", "emails": ["p5@example.com"]},
                              headers={"Idempotency-Key": "k5"})
        assert retried.status_code == 201
        assert retried.json()["id"] == created[5]["id"]
        assert len(all_contacts(client)) == 19
    assert server.terminate() == 0


def test_restart_after_kill_9_keeps_acknowledged_writes(server: ServerProcess) -> None:
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        ids = [client.post(USER, json={"name": f"K{i}"}).json()["id"] for i in range(10)]
        for contact_id in ids[:5]:
            assert client.patch(f"{USER}/{contact_id}", json={"notes": "edited"}).status_code == 200
    server.kill()
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        contacts = {c["id"]: c for c in all_contacts(client)}
        assert set(contacts) == set(ids)
        assert [contacts[i]["notes"] for i in ids] == ["edited"] * 5 + [None] * 5


ROWS = 20_000
BATCH = 2_000
KILL_AFTER = 7_000


async def test_kill_9_during_a_large_import_loses_no_acknowledged_row(
    server: ServerProcess,
) -> None:
    server.start()
    rows = [{"name": f"Imported {i:05d}", "notes": f"row {i}"} for i in range(ROWS)]
    url = "/api/importer/contacts/import"

    async def send(client: httpx.AsyncClient, batch: int, acked: dict[int, str],
                   kill_at: int | None) -> bool:
        body = "".join(json.dumps(r) + "\n" for r in rows[batch * BATCH:(batch + 1) * BATCH])
        headers = {"Idempotency-Key": f"bulk-{batch}", "content-type": "application/x-ndjson"}
        async with client.stream("POST", url, content=body.encode(), headers=headers,
                                 params={"chunk_size": 500}) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                outcome = json.loads(line)
                if "row" in outcome:
                    assert outcome["outcome"] == "created", outcome
                    acked[batch * BATCH + outcome["row"] - 1] = outcome["id"]
                    if kill_at is not None and len(acked) >= kill_at:
                        server.kill()
                        return True
        return False

    acked: dict[int, str] = {}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        killed = False
        for batch in range(ROWS // BATCH):
            try:
                killed = await send(client, batch, acked, KILL_AFTER)
            except httpx.HTTPError:
                killed = True
            if killed:
                break
    assert killed and len(acked) >= KILL_AFTER

    server.start()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        survived = {c["id"]: c for c in all_contacts(client, "/api/importer/contacts")}
    for index, contact_id in acked.items():
        assert survived[contact_id]["name"] == f"Imported {index:05d}"

    resent: dict[int, str] = {}
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
        for batch in range(ROWS // BATCH):
            await send(client, batch, resent, None)
    assert len(resent) == ROWS
    assert all(resent[i] == contact_id for i, contact_id in acked.items())
    with httpx.Client(base_url=server.url, timeout=60) as client:
        final = all_contacts(client, "/api/importer/contacts")
    assert len(final) == ROWS
    assert sorted(c["name"] for c in final) == [f"Imported {i:05d}" for i in range(ROWS)]
    assert server.terminate() == 0


def test_refuses_a_public_address_without_a_token() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTACTS_")}
    result = subprocess.run(
        [sys.executable, "-m", "contacts_cli.http", "--host", "0.0.0.0", "--port", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "CONTACTS_API_TOKEN" in result.stderr


async def test_sigterm_lets_the_request_in_flight_finish(server: ServerProcess) -> None:
    server.start()
    body = "".join(json.dumps({"name": f"Late {i:04d}"}) + "\n" for i in range(3000)).encode()
    outcomes: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=60) as client,
        client.stream("POST", "/api/graceful/contacts/import", content=body,
                      params={"chunk_size": 500},
                      headers={"content-type": "application/x-ndjson"}) as response,
    ):
        assert response.status_code == 200
        async for line in response.aiter_lines():
            outcomes.append(json.loads(line))
            if len(outcomes) == 1:
                server.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    assert outcomes[-1] == {"summary": {"created": 3000, "updated": 0, "skipped": 0,
                                        "rejected": 0, "rows": 3000, "dry_run": False}}
    assert server.terminate() == 0, server.log()
    server.start()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert len(all_contacts(client, "/api/graceful/contacts")) == 3000
