"""The admin routes for accounts: what ``contacts user add|passwd|rm`` calls in client mode.

``/admin/...`` is for the operator, never for an account holder (:mod:`.auth`: the service
token, or loopback when no token is configured; Basic credentials get 403). A password
travels in the request body, so the password-carrying routes also refuse plain HTTP from a
non-loopback address (403), as Basic does. Answers never carry the hash.

* ``POST /admin/accounts`` ``{"name", "password"}``: 201, or 409 if it exists;
* ``PUT /admin/accounts/{name}/password`` ``{"password"}``: 200, or 404;
* ``DELETE /admin/accounts/{name}``: 200 with the removed account, or 404.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from contacts_cli.accounts.basic import require_secure_transport
from contacts_cli.http.bodies import read_json_object
from contacts_cli.http.problems import invalid
from contacts_cli.http.routes import JSONBody, state


async def _fields(request: Request, *names: str) -> list[str]:
    """The string fields ``names`` of the JSON body, no other field allowed (422 otherwise)."""
    require_secure_transport(request)
    body = await read_json_object(request, state(request).settings.max_body_bytes)
    for extra in body.keys() - set(names):
        raise invalid(extra, f"unknown field; expected {', '.join(names)}")
    values: list[str] = []
    for name in names:
        value: Any = body.get(name)
        if not isinstance(value, str):
            raise invalid(name, "required, a string")
        values.append(value)
    return values


async def add_account(request: Request) -> Response:
    name, password = await _fields(request, "name", "password")
    account = await state(request).backend.add_account(name, password)
    return JSONBody(account, status_code=201,
                    headers={"Location": f"/admin/accounts/{account['name']}"})


async def set_password(request: Request) -> Response:
    (password,) = await _fields(request, "password")
    name = request.path_params["name"]
    return JSONBody(await state(request).backend.set_password(name, password))


async def remove_account(request: Request) -> Response:
    return JSONBody(await state(request).backend.remove_account(request.path_params["name"]))
