"""The service as a real process: restarts keep everything, kill -9 loses nothing acknowledged.

Each test runs ``python -m contacts_cli.http`` on a free port against its own schema of the
test PostgreSQL, stops it (SIGTERM or SIGKILL) and starts a new process on the same schema.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

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


CREATES = 300
IN_FLIGHT = 48
KILL_AT_ACK = 60
COMMIT_PAUSE = 0.05
"""Seconds each journal statement sleeps in a trigger while the creates fly: commits take
long enough that the kill always finds requests waiting for one."""


async def _slow_journal_statements(server: ServerProcess, pause: float | None) -> None:
    """Make each insert statement into the server's journal sleep ``pause`` seconds (or, with
    None, drop that trigger: that waits for a statement still sleeping to end)."""
    journal = sql.Identifier(server.schema, "journal")
    function = sql.Identifier(server.schema, "slow_journal")
    async with await psycopg.AsyncConnection.connect(server.database_url,
                                                     autocommit=True) as conn:
        if pause is None:
            await conn.execute(sql.SQL("DROP TRIGGER slow_journal ON {}").format(journal))
            return
        await conn.execute(sql.SQL(
            "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep({}); RETURN NULL; END $$"
        ).format(function, sql.Literal(pause)))
        await conn.execute(sql.SQL(
            "CREATE TRIGGER slow_journal BEFORE INSERT ON {} "
            "FOR EACH STATEMENT EXECUTE FUNCTION {}()"
        ).format(journal, function))


async def test_kill_9_with_creates_in_flight_keeps_every_acknowledged_id(
    server: ServerProcess,
) -> None:
    """kill -9 while creates are in flight: every 201 is in the journal, none twice.

    Many concurrent creates, each with its own idempotency key; the server dies the moment
    the KILL_AT_ACK-th answer arrives, with others sent and unanswered (a trigger slows the
    journal's commits so there always are some). After the restart every acknowledged id is
    there, and sending every create again (same keys) adds nothing twice.
    """
    server.start()
    await _slow_journal_statements(server, COMMIT_PAUSE)
    path = "/api/inflight-user/contacts"
    acked: dict[int, str] = {}
    unanswered: list[int] = []
    cut: list[int] = []  # sent, then the connection died under them
    killed = asyncio.Event()

    async def create(client: httpx.AsyncClient, i: int, slots: asyncio.Semaphore) -> None:
        async with slots:
            if killed.is_set():
                unanswered.append(i)
                return
            try:
                response = await client.post(
                    path, json={"name": f"Flight {i:03d}"}, headers={"Idempotency-Key": f"f{i}"}
                )
            except httpx.HTTPError as exc:
                unanswered.append(i)
                if not isinstance(exc, httpx.ConnectError):
                    cut.append(i)
                return
            assert response.status_code == 201, response.text
            acked[i] = response.json()["id"]
            if len(acked) == KILL_AT_ACK:
                server.kill()
                killed.set()

    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
        slots = asyncio.Semaphore(IN_FLIGHT)
        await asyncio.gather(*(create(client, i, slots) for i in range(CREATES)))
    assert killed.is_set()
    assert len(acked) >= KILL_AT_ACK and cut, (len(acked), len(cut))
    assert len(acked) + len(unanswered) == CREATES
    await _slow_journal_statements(server, None)

    server.start()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        survived = {c["id"]: c["name"] for c in all_contacts(client, path)}
        for i, contact_id in acked.items():
            assert survived.get(contact_id) == f"Flight {i:03d}", (i, contact_id)
        again = {
            i: client.post(path, json={"name": f"Flight {i:03d}"},
                           headers={"Idempotency-Key": f"f{i}"})
            for i in range(CREATES)
        }
        assert {r.status_code for r in again.values()} == {201}
        assert all(again[i].json()["id"] == contact_id for i, contact_id in acked.items())
        final = all_contacts(client, path)
    assert len(final) == CREATES
    assert sorted(c["name"] for c in final) == [f"Flight {i:03d}" for i in range(CREATES)]
    assert server.terminate() == 0


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
    body = "".join(json.dumps({"name": f"Late {i:04d}"}) + "\n" for i in range(10_000)).encode()
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
    assert outcomes[-1] == {"summary": {"created": 10_000, "updated": 0, "skipped": 0,
                                        "rejected": 0, "rows": 10_000, "dry_run": False}}
    assert server.wait() == 0, server.log()
    server.start()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert len(all_contacts(client, "/api/graceful/contacts")) == 10_000
