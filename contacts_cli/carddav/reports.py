"""The REPORTs of the address book: addressbook-multiget and addressbook-query (RFC 6352 8.6,
8.7) and sync-collection (RFC 6578), which reads the user's journal as its sync log."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import partial

from contacts_cli.backends.base import ServiceBackend
from contacts_cli.backends.errors import SyncTokenInvalid
from contacts_cli.carddav import urls
from contacts_cli.carddav.davxml import (
    CARDDAV,
    DAV,
    DavError,
    Multistatus,
    found_text,
    in_slices,
    parse_xml,
    q,
)
from contacts_cli.carddav.filters import parse_filter
from contacts_cli.carddav.properties import View, evaluate
from contacts_cli.carddav.rendered import RESPONSES, card_text
from contacts_cli.carddav.vcard import DEFAULT_VERSION, MEDIA_TYPE
from contacts_cli.domain import CARD_VERSIONS, Contact

MAX_RESULTS = 100_000
"""The largest ``nresults`` a client may ask for (more is the same as no limit)."""
ADDRESS_DATA = q(CARDDAV, "address-data")


async def report(backend: ServiceBackend, user: str, target: urls.Target,
                 body: bytes) -> Multistatus:
    """The multistatus answering a REPORT on ``target`` (the address book)."""
    root = parse_xml(body, "REPORT")
    if root is None:
        raise DavError(400, "a REPORT needs a body naming the report")
    reports = {
        q(CARDDAV, "addressbook-multiget"): _multiget,
        q(CARDDAV, "addressbook-query"): _query,
        q(DAV, "sync-collection"): _sync_collection,
    }
    handler = reports.get(root.tag)
    if handler is None or target.kind != "book":
        where = "this resource" if handler is not None else "this server"
        raise DavError(403, f"report {root.tag} is not supported on {where}",
                       q(DAV, "supported-report"))
    return await handler(backend, user, root)


async def _multiget(backend: ServiceBackend, user: str, root: ET.Element) -> Multistatus:
    names, version = _props(root)
    result = Multistatus()
    wanted: list[tuple[str, str | None]] = []
    for node in root.findall(q(DAV, "href")):
        target = urls.target_of_href(node.text)
        ok = (target is not None and target.kind == "card" and target.user == user
              and not target.problem)
        wanted.append((node.text or "", target.contact_id if ok and target else None))
    if not wanted:
        raise DavError(400, "an addressbook-multiget must name at least one href")
    ids = tuple(dict.fromkeys(i for _, i in wanted if i is not None))
    reply = await backend.cards(user, ids)
    async for href, contact_id in in_slices(wanted):
        contact = reply.contacts.get(contact_id) if contact_id is not None else None
        if contact is None:
            result.status(href.strip(), 404)
        else:
            _found(result, user, reply.sequence_nr, contact, names, version)
    return result


async def _query(backend: ServiceBackend, user: str, root: ET.Element) -> Multistatus:
    names, version = _props(root)
    card_filter = parse_filter(root.find(q(CARDDAV, "filter")))
    limit = _limit(root.find(q(CARDDAV, "limit")), CARDDAV)
    reply = await backend.cards(user, None)
    result = Multistatus()
    count = 0
    async for contact in in_slices(reply.contacts.values()):
        if not card_filter.matches(card_text(contact, version)):
            continue
        if limit is not None and count >= limit:
            result.status(urls.book_url(user), 507, q(DAV, "number-of-matches-within-limits"))
            break
        _found(result, user, reply.sequence_nr, contact, names, version)
        count += 1
    return result


async def _sync_collection(backend: ServiceBackend, user: str,
                           root: ET.Element) -> Multistatus:
    names, version = _props(root)
    after = urls.parse_sync_token(user, root.findtext(q(DAV, "sync-token")))
    level = (root.findtext(q(DAV, "sync-level")) or "1").strip()
    if level not in ("1", "infinite"):  # the book has no sub-collections: the two agree
        raise DavError(400, f"sync-level must be 1 or infinite, not {level!r}")
    limit = _limit(root.find(q(DAV, "limit")), DAV)
    try:
        changes = await backend.changes_since(user, after, limit)
    except SyncTokenInvalid as exc:
        raise DavError(403, str(exc), q(DAV, "valid-sync-token")) from None
    result = Multistatus()
    async for contact in in_slices(changes.changed):
        _found(result, user, changes.sequence_nr, contact, names, version)
    async for contact_id in in_slices(changes.removed):
        result.status(urls.card_url(user, contact_id), 404)
    if changes.truncated:
        result.status(urls.book_url(user), 507, q(DAV, "number-of-matches-within-limits"))
    result.sync_token(urls.sync_token(user, changes.sequence_nr))
    return result


def _found(result: Multistatus, user: str, sequence_nr: int, contact: Contact,
           names: tuple[str, ...], version: str) -> None:
    """The card's response, remembered: a card's properties are functions of its contact,
    its user and the vCard version asked for."""
    result.add(RESPONSES.get(contact, ("report", user, names, version), partial(
        _response, user, sequence_nr, contact, names, version)))


def _response(user: str, sequence_nr: int, contact: Contact, names: tuple[str, ...],
              version: str) -> str:
    view = View(urls.Target("card", user, contact.id), user, sequence_nr, contact, version)
    found, missing = evaluate(view, [n for n in names if n != ADDRESS_DATA])
    if ADDRESS_DATA in names:
        data = ET.Element(ADDRESS_DATA)
        data.text = card_text(contact, version)
        found.append(data)
    return found_text(view.url, found, missing)


def _props(root: ET.Element) -> tuple[tuple[str, ...], str]:
    """The properties a report asks for (``getetag`` if it names none) and the vCard version
    its ``address-data`` asks for."""
    prop = root.find(q(DAV, "prop"))
    names = () if prop is None else tuple(dict.fromkeys(
        c.tag for c in prop if isinstance(c.tag, str)))
    data = prop.find(ADDRESS_DATA) if prop is not None else None
    version = DEFAULT_VERSION
    if data is not None:
        content_type = data.get("content-type", MEDIA_TYPE).strip().lower()
        version = data.get("version", DEFAULT_VERSION).strip()
        if content_type != MEDIA_TYPE or version not in CARD_VERSIONS:
            raise DavError(403, f"address data is served as {MEDIA_TYPE} version "
                                f"{' or '.join(CARD_VERSIONS)}, not {content_type} {version}",
                           q(CARDDAV, "supported-address-data"))
    return names or (q(DAV, "getetag"),), version


def _limit(node: ET.Element | None, namespace: str) -> int | None:
    """``<limit><nresults>n</nresults></limit>`` as n (``None`` without one); 400 unless n is
    a positive integer."""
    if node is None:
        return None
    text = (node.findtext(q(namespace, "nresults")) or "").strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 9) or int(text) < 1:
        raise DavError(400, f"limit/nresults must be a positive integer, not {text!r}")
    return min(int(text), MAX_RESULTS)
