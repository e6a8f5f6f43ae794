"""HTTP Basic on the REST API and the admin routes, in-process (ASGI), on real PostgreSQL.

A Basic user reaches its own /api/<name>/... only; a wrong password and an unknown name get
the same answer; passwords never travel over plain HTTP from another machine; the service
token works as before; failed logins turn into 429 with Retry-After.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from contacts_cli.accounts.basic import authenticate
from contacts_cli.backends.local import LocalBackend
from contacts_cli.http.app import create_app
from contacts_cli.service.settings import Settings
from tests.accounts.conftest import PASSWORD, asgi_client, basic
from tests.service.conftest import problem

ALICE = "/api/alice/contacts"
BOB = "/api/bob/contacts"
REMOTE = ("203.0.113.5", 50000)
CHALLENGE = 'Basic realm="contacts", charset="UTF-8"'


@pytest.fixture
async def accounts(backend: LocalBackend) -> LocalBackend:
    await backend.add_account("alice", PASSWORD)
    await backend.add_account("bob", "bob's password")
    return backend


async def test_a_basic_user_reaches_its_own_contacts_only(app: Starlette,
                                                          accounts: LocalBackend) -> None:
    async with asgi_client(app) as client:
        created = await client.post(ALICE, json={"name": "Ada"}, headers=basic("alice", PASSWORD))
        assert created.status_code == 201, created.text
        listed = await client.get(ALICE, headers=basic("alice", PASSWORD))
        assert [c["name"] for c in listed.json()["items"]] == ["Ada"]
        for path in (BOB, f"{BOB}/x", "/api/stats", "/admin/accounts/alice"):
            other = await client.get(path, headers=basic("alice", PASSWORD))
            assert other.status_code == 403, path
            assert "alice" in problem(other)["detail"]
        removed = await client.delete("/admin/accounts/bob", headers=basic("alice", PASSWORD))
        assert removed.status_code == 403
        assert await accounts.verify_password("bob", "bob's password")


async def test_a_wrong_password_and_an_unknown_name_look_the_same(
    app: Starlette, accounts: LocalBackend
) -> None:
    async with asgi_client(app) as client:
        answers = [await client.get(path, headers=basic(name, password))
                   for path, name, password in [(ALICE, "alice", "not her password"),
                                                ("/api/zed/contacts", "zed", PASSWORD),
                                                ("/api/bad%2Fname/contacts", "bad/name", "x")]]
    for answer in answers:
        assert answer.status_code == 401
        assert answer.headers.get_list("www-authenticate") == [CHALLENGE]
        body = problem(answer)
        body.pop("instance")
        assert body == {"type": "https://contacts.example/problems/unauthorized",
                        "title": "Unauthorized", "status": 401,
                        "detail": "wrong user name or password"}


@pytest.mark.parametrize("header", [
    "Basic !!!not-base64", "Basic " + "YWxpY2U=", "Basic //79/w==",
])
async def test_malformed_basic_credentials_are_401_saying_so(
    app: Starlette, accounts: LocalBackend, header: str
) -> None:
    async with asgi_client(app) as client:
        answer = await client.get(ALICE, headers={"Authorization": header})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == CHALLENGE
    assert "Basic" in problem(answer)["detail"]


async def test_without_a_token_loopback_needs_no_credentials_as_before(
    app: Starlette, accounts: LocalBackend
) -> None:
    async with asgi_client(app) as client:
        assert (await client.get(BOB)).status_code == 200
        assert (await client.get("/api/stats")).status_code == 200


async def test_from_another_machine_plain_http_is_refused_and_https_asks_for_a_login(
    app: Starlette, accounts: LocalBackend
) -> None:
    async with asgi_client(app, client=REMOTE) as client:
        for headers in ({}, basic("alice", PASSWORD)):
            refused = await client.get(ALICE, headers=headers)
            assert refused.status_code == 403
            assert "HTTPS" in problem(refused)["detail"]
            assert "www-authenticate" not in refused.headers
    async with asgi_client(app, client=REMOTE, base_url="https://test") as client:
        anonymous = await client.get(ALICE)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == CHALLENGE
        assert (await client.get(ALICE, headers=basic("alice", PASSWORD))).status_code == 200
        assert (await client.get(BOB, headers=basic("alice", PASSWORD))).status_code == 403
        admin = await client.post("/admin/accounts", json={"name": "eve", "password": PASSWORD})
        assert admin.status_code == 401


async def test_the_service_token_keeps_working_next_to_basic(
    backend: LocalBackend, settings: Settings, accounts: LocalBackend
) -> None:
    app = create_app(settings.with_(api_token="t0ken"), backend)
    token = {"Authorization": "Bearer t0ken"}
    async with asgi_client(app) as client:
        assert (await client.get(BOB, headers=token)).status_code == 200
        assert (await client.get("/api/stats", headers=token)).status_code == 200
        assert (await client.get(ALICE, headers=basic("alice", PASSWORD))).status_code == 200
        assert (await client.get(BOB, headers=basic("alice", PASSWORD))).status_code == 403
        anonymous = await client.get(ALICE)  # loopback no longer suffices with a token
        assert anonymous.status_code == 401
        assert anonymous.headers.get_list("www-authenticate") == [
            'Bearer realm="contacts"', CHALLENGE]
        wrong = await client.get(ALICE, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    async with asgi_client(app, client=REMOTE) as client:
        assert (await client.get(BOB, headers=token)).status_code == 200
        anonymous = await client.get(ALICE)
        assert anonymous.status_code == 401
        assert anonymous.headers.get_list("www-authenticate") == ['Bearer realm="contacts"']


async def test_failed_logins_turn_into_429_with_retry_after(
    backend: LocalBackend, settings: Settings, accounts: LocalBackend
) -> None:
    limited = settings.with_(login_failures_per_user=3, login_failures_per_address=5,
                             login_window=300.0)
    app = create_app(limited, backend)
    async with asgi_client(app, client=("127.0.0.1", 1)) as client:
        for _ in range(3):
            assert (await client.get(ALICE, headers=basic("alice", "guess"))).status_code == 401
        blocked = await client.get(ALICE, headers=basic("alice", PASSWORD))
        assert blocked.status_code == 429  # even the right password: a refusal tells nothing
        assert blocked.headers["retry-after"] == "100"
        assert "too many failed logins" in problem(blocked)["detail"]
        # The same for a name without an account: the limiter does not tell which exist.
        for _ in range(2):
            assert (await client.get(ALICE, headers=basic("ghost", "guess"))).status_code == 401
    async with asgi_client(app, client=("127.0.0.1", 2)) as client:
        # The address 127.0.0.1 has failed 5 times now: every name is refused from it.
        blocked = await client.get(BOB, headers=basic("bob", "bob's password"))
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) == 60
    async with asgi_client(app, client=("::1", 3)) as client:
        assert (await client.get(BOB, headers=basic("bob", "bob's password"))).status_code == 200
        assert (await client.get(ALICE, headers=basic("alice", PASSWORD))).status_code == 429


async def test_authenticate_serves_other_routes_of_the_app(
    app: Starlette, accounts: LocalBackend
) -> None:
    async def whoami(request: Request) -> Response:
        return PlainTextResponse(await authenticate(request))

    app.add_route("/whoami", whoami)
    async with asgi_client(app) as client:
        assert (await client.get("/whoami", headers=basic("bob", "bob's password"))).text == "bob"
        anonymous = await client.get("/whoami")
        assert anonymous.status_code == 401  # unlike /api, no loopback exception here
        assert anonymous.headers["www-authenticate"] == CHALLENGE
        wrong = await client.get("/whoami", headers=basic("bob", "nope"))
        assert wrong.status_code == 401
    async with asgi_client(app, client=REMOTE) as client:
        assert (await client.get("/whoami", headers=basic("bob", "bob's password"))
                ).status_code == 403


async def test_admin_routes_add_change_and_remove_accounts(
    app: Starlette, backend: LocalBackend
) -> None:
    async with asgi_client(app) as client:
        created = await client.post("/admin/accounts",
                                    json={"name": "carol", "password": PASSWORD})
        assert created.status_code == 201, created.text
        assert created.headers["location"] == "/admin/accounts/carol"
        account: dict[str, Any] = created.json()
        assert set(account) == {"name", "created_at", "password_changed_at"}
        again = await client.post("/admin/accounts", json={"name": "carol", "password": PASSWORD})
        assert again.status_code == 409
        changed = await client.put("/admin/accounts/carol/password",
                                   json={"password": "carol's new one"})
        assert changed.status_code == 200
        assert (await client.get("/api/carol/contacts",
                                 headers=basic("carol", PASSWORD))).status_code == 401
        assert (await client.get("/api/carol/contacts",
                                 headers=basic("carol", "carol's new one"))).status_code == 200
        missing = await client.put("/admin/accounts/dan/password", json={"password": PASSWORD})
        assert missing.status_code == 404
        assert (await client.delete("/admin/accounts/carol")).status_code == 200
        assert (await client.delete("/admin/accounts/carol")).status_code == 404
        for body, field in [({"name": "x"}, "password"), ({"password": PASSWORD}, "name"),
                            ({"name": "x", "password": PASSWORD, "admin": True}, "admin"),
                            ({"name": "x/y", "password": PASSWORD}, "user_id"),
                            ({"name": "x", "password": "short"}, "password")]:
            refused = await client.post("/admin/accounts", json=body)
            assert refused.status_code == 422, body
            assert problem(refused)["errors"][0]["field"] == field
    async with asgi_client(app, client=REMOTE, base_url="https://test") as client:
        remote = await client.post("/admin/accounts", json={"name": "x", "password": PASSWORD})
        assert remote.status_code == 401  # the operator's routes: token or loopback only


async def test_the_cache_spares_argon2_and_never_outlives_a_change(
    app: Starlette, accounts: LocalBackend
) -> None:
    verifier = accounts.accounts.verifier
    async with asgi_client(app) as client:
        for _ in range(5):
            assert (await client.get(ALICE, headers=basic("alice", PASSWORD))).status_code == 200
        assert verifier.verifications == 1
        await accounts.set_password("alice", "alice's new password")
        stale = await client.get(ALICE, headers=basic("alice", PASSWORD))
        assert stale.status_code == 401
        assert (await client.get(ALICE, headers=basic("alice", "alice's new password"))
                ).status_code == 200
        await accounts.remove_account("alice")
        gone = await client.get(ALICE, headers=basic("alice", "alice's new password"))
        assert gone.status_code == 401


async def test_openapi_documents_the_admin_routes(app: Starlette) -> None:
    async with asgi_client(app) as client:
        document = (await client.get("/openapi.json")).json()
    assert set(document["paths"]) >= {"/admin/accounts", "/admin/accounts/{name}",
                                      "/admin/accounts/{name}/password"}
    assert document["components"]["securitySchemes"]["basic"]["scheme"] == "basic"

