"""The CardDAV protocol surface over HTTP (the app in-process, a real PostgreSQL behind it):
discovery, PROPFIND, GET/PUT/DELETE with preconditions, the REPORTs, and refusals."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import pytest

from contacts_cli.backends.local import LocalBackend
from tests.carddav.dav import (
    BOOK,
    CARD,
    DAV,
    card_text,
    multiget,
    prop_text,
    propfind,
    responses,
    sync,
)

pytestmark = pytest.mark.asyncio

ADA = card_text("Ada Lovelace", uid="ada-1", extra=["EMAIL;TYPE=work:ada@example.org",
                                                    "TEL;TYPE=cell:+1 202 555 0123",
                                                    "X-SPOUSE:William King"])


async def test_discovery_leads_from_the_well_known_url_to_the_address_book(
        dav: httpx.AsyncClient) -> None:
    moved = await dav.request("PROPFIND", "/.well-known/carddav")
    assert moved.status_code == 301 and moved.headers["location"] == "/dav/"
    root = await propfind(dav, "/dav/", ["{DAV:}current-user-principal"], depth="0")
    principal = root.find(".//{DAV:}current-user-principal/{DAV:}href")
    assert principal is not None and principal.text == "/dav/alice/"
    home = await propfind(dav, "/dav/alice/", [f"{CARD}addressbook-home-set"], depth="0")
    assert prop_text(home, f"{CARD}addressbook-home-set/{DAV}href") == "/dav/alice/"
    books = await propfind(dav, "/dav/alice/", ["{DAV:}resourcetype", "{DAV:}displayname"],
                           depth="1")
    found = {r.findtext("{DAV:}href"): r for r in responses(books)}
    assert set(found) == {"/dav/alice/", BOOK}
    assert found[BOOK].find(f".//{DAV}resourcetype/{CARD}addressbook") is not None
    book = await propfind(dav, BOOK, [
        "{DAV:}displayname", "{http://calendarserver.org/ns/}getctag", "{DAV:}sync-token",
        "{DAV:}supported-report-set", "{DAV:}current-user-privilege-set",
        f"{CARD}supported-address-data", "{DAV:}no-such-thing"], depth="0")
    assert prop_text(book, "{DAV:}displayname") == "Contacts"
    assert prop_text(book, "{DAV:}sync-token") == "http://contacts.invalid/sync/alice/0"
    reports = {e.tag for e in book.iterfind(".//{DAV:}supported-report/{DAV:}report/*")}
    assert reports == {f"{CARD}addressbook-multiget", f"{CARD}addressbook-query",
                       "{DAV:}sync-collection"}
    assert book.find(".//{DAV:}privilege/{DAV:}write") is not None
    versions = {e.get("version") for e in book.iterfind(f".//{CARD}address-data-type")}
    assert versions == {"3.0", "4.0"}
    missing = [p for p in book.iterfind("./{DAV:}response/{DAV:}propstat")
               if "404" in (p.findtext("{DAV:}status") or "")]
    assert missing and missing[0].find(".//{DAV:}no-such-thing") is not None
    options = await dav.options(BOOK)
    assert "addressbook" in options.headers["dav"] and "REPORT" in options.headers["allow"]


async def test_put_get_delete_with_etags_and_preconditions(dav: httpx.AsyncClient) -> None:
    url = BOOK + "ada-1.vcf"
    created = await dav.put(url, content=ADA, headers={"If-None-Match": "*",
                                                       "Content-Type": "text/vcard"})
    assert created.status_code == 201 and created.headers["etag"] == '"1"'
    again = await dav.put(url, content=ADA, headers={"If-None-Match": "*"})
    assert again.status_code == 412
    got = await dav.get(url)
    assert got.status_code == 200 and got.headers["etag"] == '"1"'
    assert got.headers["content-type"].startswith("text/vcard")
    assert "X-SPOUSE:William King" in got.text and "EMAIL;TYPE=work:ada@example.org" in got.text
    assert (await dav.get(url, headers={"If-None-Match": '"1"'})).status_code == 304
    edited = ADA.replace("William King", "W. King")
    stale = await dav.put(url, content=edited, headers={"If-Match": '"7"'})
    assert stale.status_code == 412
    updated = await dav.put(url, content=edited, headers={"If-Match": '"1"'})
    assert updated.status_code == 204 and updated.headers["etag"] == '"2"'
    same = await dav.put(url, content=edited, headers={"If-Match": '"2"'})
    assert same.status_code == 204 and same.headers["etag"] == '"2"'  # nothing changed
    assert (await dav.delete(url, headers={"If-Match": '"1"'})).status_code == 412
    assert (await dav.delete(url, headers={"If-Match": '"2"'})).status_code == 204
    assert (await dav.get(url)).status_code == 404
    assert (await dav.delete(url)).status_code == 404
    assert (await dav.put(url, content=ADA, headers={"If-Match": '"2"'})).status_code == 412


async def test_a_card_asked_for_in_the_other_version_is_converted(
        dav: httpx.AsyncClient) -> None:
    card = card_text("Grace Hopper", uid="g-1", version="3.0",
                     extra=["PHOTO;ENCODING=b;TYPE=JPEG:QUJDRA==",
                            "TEL;TYPE=cell,pref:+12025550199", "BDAY:1906-12-09"])
    assert (await dav.put(BOOK + "g-1.vcf", content=card)).status_code == 201
    as3 = (await dav.get(BOOK + "g-1.vcf")).text
    assert "VERSION:3.0" in as3 and "PHOTO;ENCODING=b;TYPE=JPEG:QUJDRA==" in as3
    as4 = (await dav.get(BOOK + "g-1.vcf", headers={"Accept": "text/vcard; version=4.0"})).text
    assert "VERSION:4.0" in as4 and "PHOTO:data:image/jpeg;base64,QUJDRA==" in as4
    assert "TEL;TYPE=cell;PREF=1:+12025550199" in as4 and "BDAY:19061209" in as4
    root = await multiget(dav, [BOOK + "g-1.vcf"], version="4.0")
    assert "VERSION:4.0" in (prop_text(root, f"{CARD}address-data") or "")


async def test_changes_through_rest_show_in_the_card_and_in_the_next_sync(
        dav: httpx.AsyncClient, backend: LocalBackend) -> None:
    await dav.put(BOOK + "ada-1.vcf", content=ADA)
    first = await sync(dav, "")
    token = first.findtext("{DAV:}sync-token")
    await backend.update("alice", "ada-1", {"title": "Countess", "phones": []})
    rest = await backend.create("alice", {"name": "Charles Babbage"})
    changed = await sync(dav, token or "")
    hrefs = {r.findtext("{DAV:}href") for r in responses(changed)}
    assert hrefs == {BOOK + "ada-1.vcf", BOOK + f"{rest['id']}.vcf"}
    card = (await dav.get(BOOK + "ada-1.vcf")).text
    assert "TITLE:Countess" in card and "TEL" not in card and "X-SPOUSE:William King" in card
    history = await backend.history("alice", "ada-1")
    assert [h["type"] for h in history] == ["ContactCreated", "ContactUpdated"]
    assert "X-SPOUSE:William King" in history[0]["changes"]["card"]


async def test_sync_collection_reports_changes_removals_and_honours_the_limit(
        dav: httpx.AsyncClient) -> None:
    for n in range(5):
        await dav.put(BOOK + f"c{n}.vcf", content=card_text(f"Person {n}", uid=f"c{n}"))
    first = await sync(dav, "", props=["{DAV:}getetag"])
    assert len(responses(first)) == 5
    token = first.findtext("{DAV:}sync-token") or ""
    assert token.endswith("/5")
    await dav.delete(BOOK + "c1.vcf")
    await dav.put(BOOK + "c2.vcf", content=card_text("Person Two", uid="c2"))
    await dav.put(BOOK + "c2.vcf", content=card_text("Person 2", uid="c2"))
    delta = await sync(dav, token)
    statuses = {r.findtext("{DAV:}href"): r.findtext("{DAV:}status") for r in responses(delta)}
    assert statuses == {BOOK + "c1.vcf": "HTTP/1.1 404 Not Found", BOOK + "c2.vcf": None}
    assert (delta.findtext("{DAV:}sync-token") or "").endswith("/8")
    page = await sync(dav, token, limit=1)
    assert [r.findtext("{DAV:}status") for r in responses(page)] == [
        "HTTP/1.1 404 Not Found", "HTTP/1.1 507 Insufficient Storage"]
    rest = await sync(dav, page.findtext("{DAV:}sync-token") or "")
    assert [r.findtext("{DAV:}href") for r in responses(rest)] == [BOOK + "c2.vcf"]
    for bad in ("http://contacts.invalid/sync/alice/99", "http://contacts.invalid/sync/bob/1",
                "nonsense"):
        refused = await dav.request("REPORT", BOOK, content=sync_body(bad))
        assert refused.status_code == 403
        assert ET.fromstring(refused.content).find("{DAV:}valid-sync-token") is not None


async def test_query_matches_text_on_the_common_properties(dav: httpx.AsyncClient) -> None:
    await dav.put(BOOK + "ada-1.vcf", content=ADA)
    await dav.put(BOOK + "g-1.vcf", content=card_text("Grace Hopper", uid="g-1"))
    body = f"""<?xml version="1.0"?>
<C:addressbook-query xmlns:D="DAV:" xmlns:C="{CARD[1:-1]}">
  <D:prop><D:getetag/></D:prop>
  <C:filter test="anyof">
    <C:prop-filter name="EMAIL"><C:text-match match-type="contains">EXAMPLE.org</C:text-match>
    </C:prop-filter>
  </C:filter>
</C:addressbook-query>"""
    found = ET.fromstring((await dav.request("REPORT", BOOK, content=body)).content)
    assert [r.findtext("{DAV:}href") for r in responses(found)] == [BOOK + "ada-1.vcf"]
    by_type = body.replace('<C:text-match match-type="contains">EXAMPLE.org</C:text-match>',
                           '<C:param-filter name="TYPE"><C:text-match>work</C:text-match>'
                           '</C:param-filter>')
    found = ET.fromstring((await dav.request("REPORT", BOOK, content=by_type)).content)
    assert [r.findtext("{DAV:}href") for r in responses(found)] == [BOOK + "ada-1.vcf"]
    fn = body.replace('name="EMAIL"', 'name="FN"').replace("EXAMPLE.org", "hop")
    found = ET.fromstring((await dav.request("REPORT", BOOK, content=fn)).content)
    assert [r.findtext("{DAV:}href") for r in responses(found)] == [BOOK + "g-1.vcf"]


@pytest.mark.parametrize("body", [
    b"<not-closed>",
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
    b'<D:propfind xmlns:D="DAV:"><D:prop>&b;</D:prop></D:propfind>',
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b'<D:propfind xmlns:D="DAV:"><D:prop>&e;</D:prop></D:propfind>',
    b'<D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:limit><D:nresults>-1'
    b'</D:nresults></D:limit></D:sync-collection>',
    b'<D:unknown xmlns:D="DAV:"/>',
])
async def test_malformed_or_hostile_xml_is_refused_and_writes_nothing(
        dav: httpx.AsyncClient, body: bytes) -> None:
    method = "PROPFIND" if b"propfind" in body or b"not-closed" in body else "REPORT"
    answer = await dav.request(method, BOOK, content=body, headers={"Depth": "0"})
    assert answer.status_code in (400, 403), answer.text
    reason = ET.fromstring(answer.content).findtext("{DAV:}responsedescription")
    assert reason
    assert "root:" not in answer.text


@pytest.mark.parametrize(("card", "status"), [
    ("not a vcard at all", 400),
    ("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:x\r\n", 400),
    ("BEGIN:VCARD\r\nVERSION:2.1\r\nFN:x\r\nEND:VCARD\r\n", 415),
    ("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:" + "x" * 300 + "\r\nEND:VCARD\r\n", 400),
    ("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:a\r\nEND:VCARD\r\nBEGIN:VCARD\r\nEND:VCARD\r\n", 400),
])
async def test_a_bad_card_is_refused_with_a_reason_and_writes_nothing(
        dav: httpx.AsyncClient, backend: LocalBackend, card: str, status: int) -> None:
    answer = await dav.put(BOOK + "bad.vcf", content=card)
    assert answer.status_code == status, answer.text
    assert ET.fromstring(answer.content).findtext("{DAV:}responsedescription")
    assert (await backend.cards("alice")).sequence_nr == 0


async def test_limits_names_and_other_users(dav: httpx.AsyncClient) -> None:
    huge = card_text("Big", uid="big", extra=["PHOTO:data:image/png;base64," + "A" * 1_100_000])
    too_big = await dav.put(BOOK + "big.vcf", content=huge)
    assert too_big.status_code == 413
    assert ET.fromstring(too_big.content).find(f"{CARD}max-resource-size") is not None
    assert (await dav.put(BOOK + "no-suffix", content=ADA)).status_code == 400
    assert (await dav.request("PROPFIND", "/dav/bob/", headers={"Depth": "0"})).status_code == 403
    anonymous = await dav.request("PROPFIND", BOOK, auth=("alice", "wrong"))
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Basic realm="contacts"'
    assert (await dav.request("MKCOL", BOOK + "x/")).status_code == 405
    assert (await dav.get(BOOK + "no-suffix")).status_code == 404


def sync_body(token: str) -> str:
    return (f'<D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token>'
            "<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>")


async def test_a_token_whose_events_were_deleted_is_too_old(
        dav: httpx.AsyncClient, backend: LocalBackend) -> None:
    for n in range(3):
        await dav.put(BOOK + f"c{n}.vcf", content=card_text(f"Person {n}", uid=f"c{n}"))
    await backend.engine.delete_events_to("contacts-user/alice", 2)
    refused = await dav.request("REPORT", BOOK, content=sync_body(
        "http://contacts.invalid/sync/alice/1"))
    assert refused.status_code == 403
    assert ET.fromstring(refused.content).find("{DAV:}valid-sync-token") is not None
    fine = await sync(dav, "http://contacts.invalid/sync/alice/2")
    assert [r.findtext("{DAV:}href") for r in responses(fine)] == [BOOK + "c2.vcf"]


async def test_by_default_carddav_signs_users_in_with_their_accounts(
        backend: LocalBackend) -> None:
    """Without a test authenticator the app checks HTTP Basic against the real accounts
    (``contacts user add``): no credentials or a wrong password is 401 with the Basic
    challenge, the account's own address book answers, another user's is refused."""
    from contacts_cli.http.app import create_app

    await backend.add_account("alice", "correct horse battery")
    app = create_app(backend.settings, backend)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as http:
        anonymous = await http.request("PROPFIND", BOOK, headers={"Depth": "0"})
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith('Basic realm="contacts"')
        wrong = await http.request("PROPFIND", BOOK, headers={"Depth": "0"},
                                   auth=("alice", "not the password"))
        assert wrong.status_code == 401
        own = await http.request("PROPFIND", BOOK, headers={"Depth": "0"},
                                 auth=("alice", "correct horse battery"))
        assert own.status_code == 207, own.text
        other = await http.request("PROPFIND", BOOK.replace("alice", "bob"),
                                   headers={"Depth": "0"},
                                   auth=("alice", "correct horse battery"))
        assert other.status_code in (403, 404), other.text
