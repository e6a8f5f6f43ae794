"""Guarantees of ``contacts_cli/http/conditional.py`` that the HTTP tests left unpinned
(issue 14's mutation run), through the ASGI app on the real actors and PostgreSQL."""

from __future__ import annotations

import httpx

from tests.service.test_http_api import ALICE, create


async def test_conditional_if_match_star_accepts_any_current_version(
    client: httpx.AsyncClient,
) -> None:
    contact = await create(client, name="Starred")
    url = f"{ALICE}/{contact['id']}"
    assert (await client.patch(url, json={"notes": "v2"})).status_code == 200
    for n, star in enumerate(("*", " * "), 3):
        changed = await client.patch(url, json={"notes": f"v{n}"}, headers={"If-Match": star})
        assert changed.status_code == 200, changed.text
    assert (await client.get(url)).json()["notes"] == "v4"
    removed = await client.delete(url, headers={"If-Match": "*"})
    assert removed.status_code == 200, removed.text
    assert removed.headers["etag"] == '"4"'  # the contact as it was removed
    assert (await client.get(url)).status_code == 404
