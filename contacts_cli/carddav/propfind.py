"""PROPFIND (RFC 4918 9.1) and PROPPATCH on the service root, a principal, the address book
and its cards, at depth 0, 1 or infinity."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import partial

from contacts_cli.backends.base import ServiceBackend
from contacts_cli.carddav.davxml import (
    DAV,
    DavError,
    Multistatus,
    expect_root,
    found_text,
    in_slices,
    parse_xml,
    q,
)
from contacts_cli.carddav.properties import ALLPROP, View, evaluate, names_of
from contacts_cli.carddav.rendered import RESPONSES
from contacts_cli.carddav.urls import Kind, Target

DEPTHS = {"0": 0, "1": 1, "infinity": 2}
"""Depth header values; infinity reaches every level there is (principal, book, cards)."""


def depth_of(header: str | None) -> int:
    """The Depth header as 0, 1 or 2 (infinity, also when it is absent: RFC 4918 10.2)."""
    if header is None:
        return DEPTHS["infinity"]
    depth = DEPTHS.get(header.strip().lower())
    if depth is None:
        raise DavError(400, f"Depth must be 0, 1 or infinity, not {header!r}")
    return depth


async def propfind(backend: ServiceBackend, user: str, target: Target, depth: int,
                   body: bytes) -> Multistatus:
    """The multistatus answering a PROPFIND on ``target``."""
    root = parse_xml(body, "PROPFIND")
    mode, names = _requested(root)
    result = Multistatus()
    wanted = tuple(dict.fromkeys([*ALLPROP, *names] if mode == "allprop" else names))
    async for view in in_slices(await _views(backend, user, target, depth)):
        if mode == "propname":
            result.found(view.url, [ET.Element(name) for name in names_of(view)])
        elif view.contact is None:
            result.add(_response(view, mode, wanted))
        else:  # a card's properties are functions of its contact and its user alone
            result.add(RESPONSES.get(view.contact, ("propfind", user, mode, wanted),
                                     partial(_response, view, mode, wanted)))
    return result


def _response(view: View, mode: str, wanted: tuple[str, ...]) -> str:
    found, missing = evaluate(view, list(wanted))
    return found_text(view.url, found, [] if mode == "allprop" else missing)


def proppatch(target_url: str, body: bytes) -> Multistatus:
    """Every property a PROPPATCH names is refused (403): the service's properties are live
    ones, computed from the contacts, and it stores no others."""
    root = expect_root(parse_xml(body, "PROPPATCH"), [q(DAV, "propertyupdate")], "PROPPATCH")
    names = [
        child.tag
        for action in root
        for prop in action.findall(q(DAV, "prop"))
        for child in prop
        if isinstance(child.tag, str)
    ]
    result = Multistatus()
    result.found(target_url, [], forbidden=names)
    return result


def _requested(root: ET.Element | None) -> tuple[str, list[str]]:
    if root is None:
        return "allprop", []
    root = expect_root(root, [q(DAV, "propfind")], "PROPFIND")
    if root.find(q(DAV, "propname")) is not None:
        return "propname", []
    if root.find(q(DAV, "allprop")) is not None:
        include = root.find(q(DAV, "include"))
        return "allprop", [c.tag for c in include] if include is not None else []
    prop = root.find(q(DAV, "prop"))
    if prop is None:
        raise DavError(400, "a propfind must hold prop, allprop or propname")
    return "prop", list(dict.fromkeys(c.tag for c in prop if isinstance(c.tag, str)))


async def _views(backend: ServiceBackend, user: str, target: Target, depth: int) -> list[View]:
    if target.kind == "card":
        reply = await backend.cards(user, (target.contact_id,))
        contact = reply.contacts.get(target.contact_id)
        if contact is None:
            raise DavError(404, f"no card {target.contact_id!r} in this address book")
        return [View(target, user, reply.sequence_nr, contact)]
    levels = {"root": 0, "principal": 1, "book": 2}[target.kind]
    reach = levels + depth if depth < DEPTHS["infinity"] else 3
    kinds: tuple[Kind, ...] = ("root", "principal")
    views = [View(Target(kind, user), user) for level, kind in enumerate(kinds)
             if levels <= level <= reach]
    if reach >= 2:
        reply = await backend.cards(user, None if reach >= 3 else ())
        views.append(View(Target("book", user), user, reply.sequence_nr))
        views += [View(Target("card", user, c.id), user, reply.sequence_nr, c)
                  for c in reply.contacts.values()]
    return views
