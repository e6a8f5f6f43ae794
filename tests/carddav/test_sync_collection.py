"""A sync-collection client (RFC 6578, tests/carddav/sync_client.py) against the running
service: after N changes, from CardDAV, REST and the CLI alike, a sync returns exactly those
N, paged by a limit or not; the mirror it keeps equals what the server lists."""

from __future__ import annotations

import httpx
import pytest

from tests.carddav.clients import ContactsCli
from tests.carddav.conftest import USERS, DavServer
from tests.carddav.dav import BOOK, card_text
from tests.carddav.sync_client import SyncClient

pytestmark = pytest.mark.slow


def test_a_sync_after_n_changes_returns_exactly_those_n(dav_server: DavServer) -> None:
    cli = ContactsCli(dav_server)
    with httpx.Client(base_url=dav_server.url, auth=("alice", USERS["alice"]),
                      timeout=30) as http:
        for n in range(12):
            assert http.put(f"{BOOK}p{n}.vcf",
                            content=card_text(f"Person {n}", uid=f"p{n}")).status_code == 201
        client = SyncClient(http, BOOK)
        client.sync()
        assert len(client.mirror) == 12 and client.token.endswith("/12")
        paged = SyncClient(http, BOOK)
        paged.sync(limit=5)
        assert paged.mirror == client.mirror

        # N = 6 changes, each to a different card, by three different writers.
        http.put(f"{BOOK}p0.vcf", content=card_text("Person Zero", uid="p0"))
        http.delete(f"{BOOK}p1.vcf")
        http.put(f"{BOOK}new.vcf", content=card_text("Newcomer", uid="new"))
        cli("edit", "p2", "--title", "Engineer")
        cli("rm", "p3", "--yes")
        added = cli.json("add", "--name", "From The CLI")
        changed = {f"{BOOK}p0.vcf", f"{BOOK}new.vcf", f"{BOOK}p2.vcf",
                   f"{BOOK}{added['id']}.vcf"}
        removed = {f"{BOOK}p1.vcf", f"{BOOK}p3.vcf"}
        client.sync()
        assert set(client.last_changed) == changed and set(client.last_removed) == removed
        assert len(client.last_changed) + len(client.last_removed) == 6
        paged.sync(limit=2)
        assert set(paged.last_changed) == changed and set(paged.last_removed) == removed
        assert paged.mirror == client.mirror

        listing = {c["id"] for c in cli.json("ls", "--all")}
        assert {href.rsplit("/", 1)[1].removesuffix(".vcf") for href in client.mirror} == listing
        assert "TITLE:Engineer" in client.mirror[f"{BOOK}p2.vcf"][1]

        # Nothing changed: an empty answer with the same token.
        token = client.token
        client.sync()
        assert (client.last_changed, client.last_removed, client.token) == ([], [], token)
