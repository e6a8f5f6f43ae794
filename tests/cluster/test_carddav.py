"""CardDAV in a cluster: an address-book client talking to an instance that does not host the
user gets the answers of the one that does (the request is relayed whole), so its ETags, sync
tokens and listings never disagree with the REST API's, whichever instance it reaches."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest

from tests.carddav.dav import BOOK, card_text, responses
from tests.cluster.conftest import Cluster

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple"
SYNC = ('<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token>'
        "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>")


async def _sync(http: httpx.AsyncClient, base: str, token: str) -> ET.Element:
    answer = await http.request("REPORT", base + BOOK, content=SYNC.format(token=token))
    assert answer.status_code == 207, answer.text
    return ET.fromstring(answer.content)


async def test_a_client_of_another_instance_is_served_by_the_owner(cluster_factory: Any
                                                                   ) -> None:
    cluster: Cluster = cluster_factory(2)
    owner, other = cluster.urls
    async with httpx.AsyncClient(timeout=30) as admin:
        added = await admin.post(owner + "/admin/accounts",
                                 json={"name": "alice", "password": PASSWORD})
        assert added.status_code == 201, added.text
    async with httpx.AsyncClient(timeout=30, auth=("alice", PASSWORD)) as http:
        first = await http.put(owner + BOOK + "a.vcf", content=card_text("Ann", uid="a"),
                               headers={"If-None-Match": "*"})
        assert first.status_code == 201, first.text
        hosted_by = await cluster.owner_address("alice")
        assert hosted_by == owner.removeprefix("http://")

        # Through the other instance: a write, a conditional write, reads and a sync.
        second = await http.put(other + BOOK + "b.vcf", content=card_text("Bo", uid="b"),
                                headers={"If-None-Match": "*"})
        assert second.status_code == 201, second.text
        stale = await http.put(other + BOOK + "a.vcf", content=card_text("Ann 2", uid="a"),
                               headers={"If-Match": '"999"'})
        assert stale.status_code == 412, stale.text
        card = await http.get(other + BOOK + "a.vcf")
        assert card.status_code == 200 and "FN:Ann" in card.text
        assert card.headers["etag"] == first.headers["etag"]
        updated = await http.put(other + BOOK + "a.vcf", content=card_text("Ann 2", uid="a"),
                                 headers={"If-Match": card.headers["etag"]})
        assert updated.status_code in (200, 204), updated.text
        assert updated.headers["etag"] != first.headers["etag"]

        listing = await http.request("PROPFIND", other + BOOK, headers={"Depth": "1"},
                                     content='<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/>'
                                             "</D:prop></D:propfind>")
        assert listing.status_code == 207, listing.text
        hrefs = {r.findtext("{DAV:}href") for r in responses(ET.fromstring(listing.content))}
        assert {BOOK + "a.vcf", BOOK + "b.vcf"} <= hrefs

        # The sync token is the user's sequence number, the same from either instance.
        token_owner = (await _sync(http, owner, "")).findtext("{DAV:}sync-token")
        token_other = (await _sync(http, other, "")).findtext("{DAV:}sync-token")
        assert token_owner and token_owner == token_other, (token_owner, token_other)

        # Nothing moved: the owner kept the user, the other instance only relayed.
        assert await cluster.owner_address("alice") == hosted_by
        rest = await http.get(other + "/api/alice/contacts/a")
        assert rest.status_code == 200 and rest.json()["name"] == "Ann 2"
