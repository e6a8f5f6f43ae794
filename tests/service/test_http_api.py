"""The HTTP API in-process (ASGI) against the real actors on a real PostgreSQL schema."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from contacts_cli.backends.local import LocalBackend
from contacts_cli.http.app import create_app
from contacts_cli.service.settings import Settings
from tests.service.conftest import problem

ALICE = "/api/alice/contacts"
BOB = "/api/bob/contacts"


async def create(client: httpx.AsyncClient, path: str = ALICE, **fields: Any) -> dict[str, Any]:
    response = await client.post(path, json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_create_answers_201_with_location_and_etag(client: httpx.AsyncClient) -> None:
    response = await client.post(ALICE, json={
        "name": "Ada Lovelace", "emails": ["ADA@Example.org"], "phones": ["+44 20 7946 0958"],
    })
    assert response.status_code == 201
    contact = response.json()
    assert contact["name"] == "Ada Lovelace"
    assert contact["emails"] == ["ADA@example.org"]
    assert contact["phones"] == ["+442079460958"]
    assert contact["version"] == 1
    assert response.headers["location"] == f"{ALICE}/{contact['id']}"
    assert response.headers["etag"] == '"1"'
    fetched = await client.get(response.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json() == contact
    assert fetched.headers["etag"] == '"1"'


async def test_unknown_contact_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{ALICE}/does-not-exist")
    assert response.status_code == 404
    assert "does-not-exist" in problem(response)["detail"]
    for method in ("PATCH", "DELETE"):
        kwargs: dict[str, Any] = {"json": {"name": "x"}} if method == "PATCH" else {}
        response = await client.request(method, f"{ALICE}/nope", **kwargs)
        assert response.status_code == 404, (method, response.text)
    response = await client.get(f"{ALICE}/nope/history")
    assert response.status_code == 404


async def test_list_is_sorted_by_name_and_paged(client: httpx.AsyncClient) -> None:
    for name in ["delta", "Alpha", "charlie", "Bravo", "echo"]:
        await create(client, name=name)
    first = (await client.get(ALICE, params={"limit": 2})).json()
    assert [c["name"] for c in first["items"]] == ["Alpha", "Bravo"]
    second = (await client.get(ALICE, params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert [c["name"] for c in second["items"]] == ["charlie", "delta"]
    third = (await client.get(ALICE, params={"limit": 2, "cursor": second["next_cursor"]})).json()
    assert [c["name"] for c in third["items"]] == ["echo"]
    assert third["next_cursor"] is None


async def test_search_terms_fields_and_phone_digits(client: httpx.AsyncClient) -> None:
    await create(client, name="Grace Hopper", company="US Navy", phones=["+1 202 555 0143"])
    await create(client, name="Grace Kelly", company="Monaco")
    await create(client, name="Alan Turing", notes="navy? no, Bletchley")

    async def names(q: str) -> list[str]:
        response = await client.get(ALICE, params={"q": q})
        assert response.status_code == 200, response.text
        return [c["name"] for c in response.json()["items"]]

    assert await names("grace") == ["Grace Hopper", "Grace Kelly"]
    assert await names("GRACE navy") == ["Grace Hopper"]
    assert await names("navy") == ["Alan Turing", "Grace Hopper"]
    assert await names("company:navy") == ["Grace Hopper"]
    assert await names("phone:(202) 555-0143") == ["Grace Hopper"]
    assert await names("2025550143") == ["Grace Hopper"]
    response = await client.get(ALICE, params={"q": "colour:red"})
    assert response.status_code == 422
    assert problem(response)["errors"][0]["field"] == "q"


async def test_update_merges_and_null_clears(client: httpx.AsyncClient) -> None:
    contact = await create(client, name="Linus", company="Transmeta", title="Engineer")
    url = f"{ALICE}/{contact['id']}"
    response = await client.patch(url, json={"company": "Linux Foundation", "title": None})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["company"] == "Linux Foundation"
    assert updated["title"] is None
    assert updated["name"] == "Linus"
    assert updated["version"] == 2
    assert response.headers["etag"] == '"2"'
    assert (await client.get(url)).json() == updated


async def test_stale_if_match_is_412_and_changes_nothing(client: httpx.AsyncClient) -> None:
    contact = await create(client, name="Version One")
    url = f"{ALICE}/{contact['id']}"
    ok = await client.patch(url, json={"notes": "v2"}, headers={"If-Match": '"1"'})
    assert ok.status_code == 200
    stale = await client.patch(url, json={"notes": "lost?"}, headers={"If-Match": '"1"'})
    assert stale.status_code == 412
    assert "version 2" in problem(stale)["detail"]
    stale_delete = await client.delete(url, headers={"If-Match": '"1"'})
    assert stale_delete.status_code == 412
    current = (await client.get(url)).json()
    assert current["notes"] == "v2"
    assert current["version"] == 2
    malformed = await client.patch(url, json={"notes": "x"}, headers={"If-Match": "two"})
    assert malformed.status_code == 400


async def test_get_with_matching_if_none_match_is_304(client: httpx.AsyncClient) -> None:
    contact = await create(client, name="Cached")
    url = f"{ALICE}/{contact['id']}"
    assert (await client.get(url, headers={"If-None-Match": '"1"'})).status_code == 304
    assert (await client.get(url, headers={"If-None-Match": '"7"'})).status_code == 200


async def test_remove_then_gone_but_history_remains(client: httpx.AsyncClient) -> None:
    contact = await create(client, name="Temporary", emails=["tmp@example.com"])
    url = f"{ALICE}/{contact['id']}"
    await client.patch(url, json={"notes": "about to go"})
    removed = await client.delete(url, headers={"If-Match": '"2"'})
    assert removed.status_code == 200
    assert removed.json()["id"] == contact["id"]
    assert (await client.get(url)).status_code == 404
    assert (await client.delete(url)).status_code == 404
    history = await client.get(f"{url}/history")
    assert history.status_code == 200
    entries = history.json()
    assert [e["type"] for e in entries] == ["ContactCreated", "ContactUpdated", "ContactRemoved"]
    assert [e["version"] for e in entries] == [1, 2, 3]
    assert entries[0]["changes"]["name"] == "Temporary"
    assert entries[1]["changes"] == {"notes": "about to go"}
    stamps = [datetime.fromisoformat(e["timestamp"]) for e in entries]
    assert stamps == sorted(stamps)
    assert all(s.tzinfo is not None for s in stamps)


async def test_as_of_replays_up_to_a_timestamp(client: httpx.AsyncClient) -> None:
    """as_of at each event's own timestamp, read from the histories: no sleep to separate
    them, and right even if two events share a timestamp (both are then included)."""
    early = await create(client, name="Early", notes="original")
    late = await create(client, name="Late")
    await client.patch(f"{ALICE}/{early['id']}", json={"notes": "edited"})
    await client.delete(f"{ALICE}/{late['id']}")

    async def stamps(contact: dict[str, Any]) -> list[datetime]:
        history = (await client.get(f"{ALICE}/{contact['id']}/history")).json()
        return [datetime.fromisoformat(entry["timestamp"]) for entry in history]

    (early_created, early_edited), (late_created, late_removed) = (
        await stamps(early), await stamps(late))
    # What each event did, in the order they were written, by the test's own account.
    changes: list[tuple[datetime, str, str | None]] = [
        (early_created, "Early", "original"),
        (late_created, "Late", None),
        (early_edited, "Early", "edited"),
        (late_removed, "Late", "removed"),
    ]

    def expected(at: datetime) -> list[tuple[str, str | None]]:
        contacts: dict[str, str | None] = {}
        for stamp, name, notes in changes:
            if stamp <= at:
                if notes == "removed":
                    del contacts[name]
                else:
                    contacts[name] = notes
        return sorted(contacts.items())

    for at in (early_created, late_created, early_edited, late_removed):
        past = await client.get(ALICE, params={"as_of": at.isoformat()})
        assert past.status_code == 200, past.text
        assert sorted((c["name"], c["notes"]) for c in past.json()["items"]) == expected(at)
    assert expected(late_removed) == [("Early", "edited")]
    before = await client.get(ALICE, params={"as_of": "2000-01-01T00:00:00Z"})
    assert before.json()["items"] == []
    bad = await client.get(ALICE, params={"as_of": "yesterday"})
    assert bad.status_code == 422
    assert problem(bad)["errors"][0]["field"] == "as_of"


async def test_validation_errors_name_every_field(client: httpx.AsyncClient) -> None:
    response = await client.post(ALICE, json={
        "emails": ["not-an-email"], "phones": ["12"], "birthday": "1990-02-31", "colour": "red",
    })
    assert response.status_code == 422
    body = problem(response)
    fields = {e["field"] for e in body["errors"]}
    assert {"name", "emails[0]", "phones[0]", "birthday", "colour"} <= fields
    assert (await client.get(ALICE)).json()["items"] == []


async def test_malformed_bodies_are_4xx_and_change_nothing(client: httpx.AsyncClient) -> None:
    headers = {"content-type": "application/json"}
    cases = [
        (b"{", 400),
        (b"", 400),
        (b'{"name": NaN}', 400),
        (b"\xff\xfe", 400),
        (b'["a list"]', 422),
        (b'"just a string"', 422),
        (b'{"name": 42}', 422),
        (b'{"name": "x", "id": "chosen-by-client"}', 422),
        (b'{"name": "x", "version": 7}', 422),
        (b'{"name": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", 400),  # RecursionError before
        (b'{"name": "\\ud800"}', 422),  # a lone surrogate crashed the journal's encoder
        (b'{"\\ud800": "x", "name": "y"}', 422),  # the problem itself could not be encoded
    ]
    for body, status in cases:
        response = await client.post(ALICE, content=body, headers=headers)
        assert response.status_code == status, (body, response.text)
        problem(response)
    form = await client.post(ALICE, content=b"name=x",
                             headers={"content-type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    assert (await client.get(ALICE)).json()["items"] == []


async def test_body_over_the_limit_is_413(backend: LocalBackend, settings: Settings) -> None:
    small = settings.with_(max_body_bytes=1000)
    app = create_app(small, backend)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        response = await client.post(ALICE, json={"name": "x", "notes": "y" * 2000})
        assert response.status_code == 413
        assert "1000" in problem(response)["detail"]
        ok = await client.post(ALICE, json={"name": "x", "notes": "y" * 100})
        assert ok.status_code == 201
        assert len((await client.get(ALICE)).json()["items"]) == 1


async def test_default_body_limit_is_one_megabyte(client: httpx.AsyncClient) -> None:
    response = await client.post(ALICE, content=b'{"name": "' + b"a" * (1024 * 1024) + b'"}',
                                 headers={"content-type": "application/json"})
    assert response.status_code == 413


@pytest.mark.parametrize(
    "user", ["a" * 65, "has space", "semi;colon", "quote'", "..%2F..", "%00", "ü"]
)
async def test_invalid_user_ids_are_rejected(client: httpx.AsyncClient, user: str) -> None:
    response = await client.post(f"/api/{user}/contacts", json={"name": "x"})
    assert response.status_code in (404, 422), response.text
    if response.status_code == 422:
        assert problem(response)["errors"][0]["field"] == "user_id"


async def test_user_ids_use_the_allowed_alphabet(client: httpx.AsyncClient) -> None:
    for user in ["a", "A.b_c-9", "x" * 64]:
        response = await client.post(f"/api/{user}/contacts", json={"name": user})
        assert response.status_code == 201, (user, response.text)


INJECTIONS = [
    "'; DROP TABLE journal; --",
    "Robert'); DELETE FROM contacts_journal;--",
    "<script>alert(1)</script>",
    "{{7*7}}",
    "${jndi:ldap://x}",
    "../../etc/passwd",
    "\u202eevil",
    "a\u0000b",
]


async def test_injection_attempts_are_inert(client: httpx.AsyncClient) -> None:
    for attempt in INJECTIONS:
        response = await client.post(ALICE, json={"name": attempt, "notes": attempt,
                                                  "company": attempt, "labels": [attempt]})
        if "\u0000" in attempt:
            assert response.status_code == 422, response.text
            continue
        if ";" in attempt:  # labels may not hold ';' (it separates labels in exports)
            assert response.status_code == 422, response.text
            response = await client.post(ALICE, json={"name": attempt, "notes": attempt,
                                                      "company": attempt})
        assert response.status_code == 201, (attempt, response.text)
        contact = response.json()
        assert contact["name"] == attempt.strip()
        fetched = await client.get(f"{ALICE}/{contact['id']}")
        assert fetched.json()["notes"] == attempt.strip()
    for attempt in INJECTIONS[:3]:
        for path in (f"{ALICE}/{attempt}", f"{ALICE}/{attempt}/history"):
            response = await client.get(path)
            assert 400 <= response.status_code < 500
        response = await client.get(ALICE, params={"q": attempt, "cursor": attempt})
        assert response.status_code == 422
        if " " in attempt:
            response = await client.post(ALICE, json={"name": "x"},
                                         headers={"Idempotency-Key": attempt})
            assert response.status_code == 422
    names = [c["name"] for c in (await client.get(ALICE, params={"limit": 100})).json()["items"]]
    assert len(names) == len(INJECTIONS) - 1


async def test_users_cannot_see_or_change_each_other(client: httpx.AsyncClient) -> None:
    secret = await create(client, ALICE, name="Alice's secret", emails=["s@example.com"])
    url_as_bob = f"{BOB}/{secret['id']}"
    assert (await client.get(url_as_bob)).status_code == 404
    assert (await client.patch(url_as_bob, json={"name": "pwned"})).status_code == 404
    assert (await client.delete(url_as_bob)).status_code == 404
    assert (await client.get(f"{url_as_bob}/history")).status_code == 404
    assert (await client.get(BOB)).json()["items"] == []
    assert (await client.get(BOB, params={"q": "secret"})).json()["items"] == []
    now = datetime.now(UTC).isoformat()
    assert (await client.get(BOB, params={"as_of": now})).json()["items"] == []
    still = (await client.get(f"{ALICE}/{secret['id']}")).json()
    assert still == secret


async def test_idempotency_key_returns_the_first_result(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "create-42"}
    first = await client.post(ALICE, json={"name": "Once"}, headers=headers)
    again = await client.post(ALICE, json={"name": "Once"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    other_body = await client.post(ALICE, json={"name": "Twice"}, headers=headers)
    assert other_body.status_code == 422
    assert problem(other_body)["errors"][0]["field"] == "Idempotency-Key"
    # keys are per user: bob's identical key is a different request
    bobs = await client.post(BOB, json={"name": "Once"}, headers=headers)
    assert bobs.status_code == 201
    assert bobs.json()["id"] != first.json()["id"]
    assert len((await client.get(ALICE)).json()["items"]) == 1


async def test_concurrent_retries_with_one_key_create_one_contact(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "burst"}
    responses = await asyncio.gather(*[
        client.post(ALICE, json={"name": "Burst"}, headers=headers) for _ in range(8)
    ])
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert len((await client.get(ALICE)).json()["items"]) == 1


def jsonl(rows: list[Any]) -> bytes:
    return b"".join(
        (row if isinstance(row, bytes) else json.dumps(row).encode()) + b"\n" for row in rows
    )


async def import_body(
    client: httpx.AsyncClient, body: bytes, **params: Any
) -> list[dict[str, Any]]:
    headers = {"content-type": "application/x-ndjson"}
    if "key" in params:
        headers["Idempotency-Key"] = params.pop("key")
    response = await client.post(f"{ALICE}/import", content=body, params=params, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]


async def test_import_reports_each_row_and_a_summary(client: httpx.AsyncClient) -> None:
    await create(client, name="Existing", emails=["dup@example.com"])
    body = jsonl([
        {"name": "New One", "emails": ["new@example.com"]},
        {"name": "Dup", "emails": ["DUP@example.com"]},
        b"{not json",
        {"emails": ["nameless@example.com"]},
        b"",
        ["not", "an", "object"],
        {"name": "Last"},
    ])
    lines = await import_body(client, body, chunk_size=2)
    rows, summary = lines[:-1], lines[-1]["summary"]
    assert [(r["row"], r["outcome"]) for r in rows] == [
        (1, "created"), (2, "skipped"), (3, "rejected"), (4, "rejected"), (6, "rejected"),
        (7, "created"),
    ]
    assert rows[1]["id"] is not None
    assert rows[2]["errors"][0]["field"] == "line"
    assert rows[3]["errors"][0]["field"] == "name"
    assert summary == {"created": 2, "updated": 0, "skipped": 1, "rejected": 3, "rows": 6,
                       "dry_run": False}
    names = [c["name"] for c in (await client.get(ALICE)).json()["items"]]
    assert names == ["Existing", "Last", "New One"]


async def test_import_policies_update_and_create(client: httpx.AsyncClient) -> None:
    original = await create(client, name="Orig", emails=["same@example.com"])
    updated = await import_body(client, jsonl([
        {"name": "Orig", "emails": ["same@example.com"], "company": "ACME"}]), policy="update")
    assert updated[0]["outcome"] == "updated"
    assert updated[0]["id"] == original["id"]
    assert (await client.get(f"{ALICE}/{original['id']}")).json()["company"] == "ACME"
    created = await import_body(client, jsonl([
        {"name": "Copy", "emails": ["same@example.com"]}]), policy="create")
    assert created[0]["outcome"] == "created"
    assert len((await client.get(ALICE)).json()["items"]) == 2
    bad = await client.post(f"{ALICE}/import", content=b"{}\n", params={"policy": "merge"})
    assert bad.status_code == 422
    assert problem(bad)["errors"][0]["field"] == "policy"


async def test_import_dry_run_writes_nothing(client: httpx.AsyncClient) -> None:
    lines = await import_body(client, jsonl([{"name": "Ghost"}]), dry_run="true")
    assert lines[0]["outcome"] == "created"
    assert lines[-1]["summary"]["dry_run"] is True
    assert (await client.get(ALICE)).json()["items"] == []


async def test_import_overlong_line_is_rejected_alone(
    backend: LocalBackend, settings: Settings
) -> None:
    app = create_app(settings.with_(max_line_bytes=200, max_body_bytes=100), backend)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        body = jsonl([{"name": "ok"}, {"name": "long", "notes": "x" * 500}, {"name": "ok2"}])
        lines = await import_body(client, body)
        assert [(r["row"], r["outcome"]) for r in lines[:-1]] == [
            (1, "created"), (2, "rejected"), (3, "created")]
        assert "200 bytes" in lines[1]["errors"][0]["message"]


async def test_import_with_idempotency_key_is_safe_to_resend(client: httpx.AsyncClient) -> None:
    rows = [{"name": f"Row {i}"} for i in range(30)]  # no emails: duplicates need the key
    first = await import_body(client, jsonl(rows), key="batch-1", chunk_size=7)
    again = await import_body(client, jsonl(rows), key="batch-1", chunk_size=7)
    assert [r["id"] for r in first[:-1]] == [r["id"] for r in again[:-1]]
    assert all(r["outcome"] == "created" for r in again[:-1])
    listed = (await client.get(ALICE, params={"limit": 1000})).json()["items"]
    assert len(listed) == 30


async def test_authorization_is_required_when_a_token_is_set(
    backend: LocalBackend, settings: Settings
) -> None:
    app = create_app(settings.with_(api_token="t0ken"), backend)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as client:
        missing = await client.get(ALICE)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        problem(missing)
        wrong = await client.post(ALICE, json={"name": "x"},
                                  headers={"Authorization": "Bearer t0ken-not"})
        assert wrong.status_code == 401
        basic = await client.get(ALICE, headers={"Authorization": "Basic dDBrZW4="})
        assert basic.status_code == 401
        assert (await client.get("/api/stats")).status_code == 401
        good = await client.post(ALICE, json={"name": "x"},
                                 headers={"Authorization": "Bearer t0ken"})
        assert good.status_code == 201
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
        listed = await client.get(ALICE, headers={"Authorization": "bearer t0ken"})
        assert [c["name"] for c in listed.json()["items"]] == ["x"]


async def test_health_readiness_stats_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    await create(client, name="Counted")
    await create(client, BOB, name="Counted too")
    stats = (await client.get("/api/stats")).json()
    assert stats["users"] == 2
    assert stats["live_users"] == 2
    assert stats["events_persisted"] >= 2
    assert stats["recoveries"] >= 2
    metrics = (await client.get("/metrics")).text
    for name in ("contacts_live_actors", "contacts_messages_handled_total",
                 "contacts_persist_seconds_count", "contacts_replay_seconds_count",
                 "contacts_events_replayed_total", "contacts_http_requests_total"):
        assert name in metrics, name
    assert 'route="/api/{user_id}/contacts"' in metrics


async def test_unknown_routes_and_methods_are_problems(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nothing/here")
    assert missing.status_code == 404
    problem(missing)
    wrong = await client.put(f"{ALICE}/x", json={})
    assert wrong.status_code == 405
    assert set(wrong.headers["allow"].replace(" ", "").split(",")) >= {"GET", "PATCH", "DELETE"}


async def test_openapi_documents_every_route(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    app = client._transport.app  # type: ignore[attr-defined]
    documented = {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item if method != "parameters"
    }
    served = {
        (route.path, method)
        for route in app.routes
        if not route.endpoint.__module__.startswith("contacts_cli.carddav")  # WebDAV, not REST
        for method in route.methods if method != "HEAD"
    }
    assert served == documented


async def test_injection_in_every_field_is_refused_or_stored_verbatim(
    client: httpx.AsyncClient,
) -> None:
    attack = "x'); DROP TABLE contacts_journal; --<script>"
    text_fields = ["name", "company", "title", "address", "notes"]
    for field in text_fields:
        response = await client.post(ALICE, json={"name": "n", field: attack})
        assert response.status_code == 201, (field, response.text)
        assert response.json()[field] == attack
    for field in ["emails", "phones", "labels"]:
        response = await client.post(ALICE, json={"name": "n", field: [attack]})
        assert response.status_code == 422, (field, response.text)
        assert problem(response)["errors"][0]["field"] == f"{field}[0]"
    response = await client.post(ALICE, json={"name": "n", "birthday": attack})
    assert response.status_code == 422
    response = await client.post(ALICE, json={"name": "n", attack: "x"})
    assert response.status_code == 422
    assert problem(response)["errors"][0]["field"] == attack
    listed = (await client.get(ALICE)).json()["items"]
    assert len(listed) == len(text_fields)
    patched = await client.patch(f"{ALICE}/{listed[0]['id']}", json={"emails": [attack]})
    assert patched.status_code == 422
    assert (await client.get(f"{ALICE}/{listed[0]['id']}")).json() == listed[0]


async def test_an_actor_that_does_not_answer_in_time_is_504(
    backend: LocalBackend, settings: Settings
) -> None:
    impatient = settings.with_(import_chunk_timeout=0.001)
    slow = await LocalBackend.open(impatient, engine=backend.engine)
    app = create_app(impatient, slow)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test") as client:
            body = jsonl([{"name": f"P{i}"} for i in range(3000)])
            response = await client.post(f"{ALICE}/import", content=body,
                                         params={"chunk_size": 3000})
            assert response.status_code == 504, response.text[:300]
            assert problem(response)["title"] == "Gateway Timeout"
    finally:
        await slow.close()


async def test_a_huge_bad_header_is_not_echoed_back(client: httpx.AsyncClient) -> None:
    """A 100 KB If-Match was quoted whole in the 400 problem; now a short excerpt."""
    created = await client.post(ALICE, json={"name": "Echo"})
    url = created.headers["location"]
    response = await client.patch(url, json={"notes": "x"}, headers={"If-Match": "x" * 100_000})
    assert response.status_code == 400
    detail = problem(response)["detail"]
    assert "If-Match" in detail and "100000 characters" in detail
    assert len(response.content) < 1_000


async def test_a_trailing_or_encoded_slash_is_a_problem_not_a_redirect(
    client: httpx.AsyncClient,
) -> None:
    """They answered a bare 307 (Starlette's slash redirect) instead of problem+json."""
    for path in (ALICE + "/", ALICE + "/%2F", ALICE + "/some-id/"):
        response = await client.get(path)
        assert response.status_code == 404, (path, response.status_code)
        problem(response)


async def test_empty_cursor_and_q_mean_none_with_as_of_too(client: httpx.AsyncClient) -> None:
    """``cursor=`` is accepted without ``as_of``; with it, it was a 422."""
    await client.post(ALICE, json={"name": "Then"})
    now = "2999-01-01T00:00:00Z"
    response = await client.get(ALICE, params={"as_of": now, "cursor": "", "q": ""})
    assert response.status_code == 200, response.text
    assert [c["name"] for c in response.json()["items"]] == ["Then"]
    refused = await client.get(ALICE, params={"as_of": now, "cursor": "abc"})
    assert refused.status_code == 422


async def test_openapi_says_credentials_are_optional_without_a_token(
    client: httpx.AsyncClient, backend: LocalBackend, settings: Settings
) -> None:
    """Without CONTACTS_API_TOKEN loopback clients need no credentials; the document
    required them anyway. With a token it still does."""
    loose = (await client.get("/openapi.json")).json()
    assert {} in loose["security"]
    app = create_app(settings.with_(api_token="s3cret"), backend)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as strict_client:
        strict = (await strict_client.get("/openapi.json")).json()
    assert {} not in strict["security"] and strict["security"]


async def test_import_rejects_surrogates_in_band_and_keeps_the_rest(
    client: httpx.AsyncClient,
) -> None:
    """A lone surrogate in a value failed its whole chunk with a 500; one in a key cut the
    stream short after an earlier row of the chunk was committed. Now both rows are
    rejected in-band, the others written, and the stream ends with its summary."""
    body = jsonl([
        {"name": "Before"},
        b'{"name": "\\ud800"}',
        b'{"\\ud800": "x", "name": "Keyed"}',
        {"name": "After"},
    ])
    lines = await import_body(client, body, chunk_size=10)
    rows, summary = lines[:-1], lines[-1]["summary"]
    assert [(r["row"], r["outcome"]) for r in rows] == [
        (1, "created"), (2, "rejected"), (3, "rejected"), (4, "created")]
    assert rows[1]["errors"][0]["field"] == "name"
    assert summary["created"] == 2 and summary["rejected"] == 2
    names = [c["name"] for c in (await client.get(ALICE)).json()["items"]]
    assert names == ["After", "Before"]
