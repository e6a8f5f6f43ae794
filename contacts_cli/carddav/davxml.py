"""WebDAV XML in and out: requests parsed safely, multistatus and error bodies built.

Requests are parsed with defusedxml: a document type declaration, an entity or an external
reference is refused outright (no billion laughs, no external entity reads), and the route
bounds the body's size before it gets here. Whatever cannot be parsed raises
:class:`DavError` 400 naming the reason, so a malformed request never reaches a handler.

Properties are named in Clark notation (``{DAV:}getetag``), as ElementTree names them.

A multistatus is serialised a response at a time as it is built (:class:`Multistatus`), and
the loops that build one (``propfind``, ``reports``) hand the event loop back every
:data:`SLICE` responses (:func:`in_slices`): a listing of 5,000 cards takes ~50 ms of work,
which must never stall the other users' requests in one piece.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterable
from http import HTTPStatus
from typing import TypeVar

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from starlette.responses import Response

from contacts_cli.carddav.xmlwrite import CALENDARSERVER as CALENDARSERVER
from contacts_cli.carddav.xmlwrite import CARDDAV as CARDDAV
from contacts_cli.carddav.xmlwrite import DAV as DAV
from contacts_cli.carddav.xmlwrite import DECLARATIONS, escape_text, write

XML_TYPE = "application/xml; charset=utf-8"

ET.register_namespace("d", DAV)
ET.register_namespace("card", CARDDAV)
ET.register_namespace("cs", CALENDARSERVER)

SLICE = 200
"""Responses a multistatus loop builds before it lets the event loop run other work
(about 5 ms of it on this machine)."""

T = TypeVar("T")


def q(namespace: str, name: str) -> str:
    """A qualified name in Clark notation."""
    return f"{{{namespace}}}{name}"


class DavError(Exception):
    """An error answer: ``status``, a reason for people and, for a failed precondition, the
    element (RFC 4918 16) that names it for clients, e.g. ``{DAV:}valid-sync-token``."""

    def __init__(self, status: int, reason: str, precondition: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.precondition = precondition
        self.headers = headers or {}

    def response(self) -> Response:
        root = ET.Element(q(DAV, "error"))
        if self.precondition is not None:
            ET.SubElement(root, self.precondition)
        ET.SubElement(root, q(DAV, "responsedescription")).text = self.reason
        return Response(_serialise(root), self.status, headers=self.headers,
                        media_type=XML_TYPE)


def parse_xml(body: bytes, what: str) -> ET.Element | None:
    """The root element of a request body (``None`` for an empty one); 400 if it is not
    well-formed XML or declares a DTD, an entity or an external reference."""
    if not body.strip():
        return None
    try:
        root: ET.Element = fromstring(body, forbid_dtd=True, forbid_entities=True,
                                      forbid_external=True)
    except DefusedXmlException as exc:
        raise DavError(400, f"the {what} body is refused: {type(exc).__name__} "
                            "(no DTDs, entities or external references)") from None
    except ET.ParseError as exc:
        raise DavError(400, f"the {what} body is not well-formed XML: {exc}") from None
    return root


def expect_root(root: ET.Element | None, allowed: Iterable[str], what: str) -> ET.Element:
    """``root`` if it is one of ``allowed``; else 400 saying what was expected."""
    names = list(allowed)
    if root is None or root.tag not in names:
        found = "an empty body" if root is None else root.tag
        raise DavError(400, f"a {what} body must be {' or '.join(names)}, not {found}")
    return root


def prop_names(prop: ET.Element | None) -> list[str]:
    """The property names a ``DAV:prop`` element asks for, in order, without repeats."""
    if prop is None:
        return []
    return list(dict.fromkeys(child.tag for child in prop if isinstance(child.tag, str)))


def status_line(status: int) -> str:
    return f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"


class Multistatus:
    """A ``DAV:multistatus`` body (RFC 4918 13), written as text response by response
    (:mod:`~contacts_cli.carddav.xmlwrite`; the root declares the service's namespaces)."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def found(self, href: str, props: list[ET.Element], missing: Iterable[str] = (),
              *, forbidden: Iterable[str] = ()) -> None:
        """One resource: the properties it has (200), lacks (404) or refuses (403)."""
        self._add(found_text(href, props, missing, forbidden=forbidden))

    def add(self, response: str) -> None:
        """One resource's response, as :func:`found_text` wrote it."""
        self._add(response)

    def status(self, href: str, status: int, precondition: str | None = None) -> None:
        """One resource answered by a status alone (a removed card: 404)."""
        out = [_RESPONSE, escape_text(href), _HREF_END, _STATUS[status]]
        if precondition is not None:
            out.append("<d:error>")
            write(ET.Element(precondition), out)
            out.append("</d:error>")
        out.append("</d:response>")
        self._add("".join(out))

    def sync_token(self, token: str) -> None:
        self._add(f"<d:sync-token>{escape_text(token)}</d:sync-token>")

    def _add(self, text: str) -> None:
        self._parts.append(text)

    def body(self) -> bytes:
        return (f'<?xml version="1.0" encoding="utf-8"?>\n<d:multistatus{DECLARATIONS}>'
                f"{''.join(self._parts)}</d:multistatus>").encode()

    def response(self) -> Response:
        return Response(self.body(), 207, media_type=XML_TYPE)


def found_text(href: str, props: list[ET.Element], missing: Iterable[str] = (),
               *, forbidden: Iterable[str] = ()) -> str:
    """The ``DAV:response`` of :meth:`Multistatus.found`, as text (to remember and reuse)."""
    out = [_RESPONSE, escape_text(href), _HREF_END]
    missing = list(missing)
    if props or not missing:
        _propstat(out, props, 200)
    if missing:
        _propstat(out, [ET.Element(n) for n in missing], 404)
    if forbidden := list(forbidden):
        _propstat(out, [ET.Element(n) for n in forbidden], 403)
    out.append("</d:response>")
    return "".join(out)


_RESPONSE = "<d:response><d:href>"
_HREF_END = "</d:href>"


class _StatusElements(dict[int, str]):
    """``<d:status>`` elements by status code, made once each."""

    def __missing__(self, status: int) -> str:
        self[status] = f"<d:status>{status_line(status)}</d:status>"
        return self[status]


_STATUS = _StatusElements()


def _propstat(out: list[str], props: list[ET.Element], status: int) -> None:
    out.append("<d:propstat><d:prop>")
    for prop in props:
        write(prop, out)
    out.append("</d:prop>")
    out.append(_STATUS[status])
    out.append("</d:propstat>")


async def in_slices(items: Iterable[T]) -> AsyncIterator[T]:
    """``items``, handing the event loop back after every :data:`SLICE` of them."""
    for n, item in enumerate(items, 1):
        yield item
        if n % SLICE == 0:
            await asyncio.sleep(0)


def element(name: str, text: str | None = None, *children: ET.Element,
            **attributes: str) -> ET.Element:
    """An element with text or children, for property values."""
    node = ET.Element(name, attributes)
    node.text = text
    node.extend(children)
    return node


def href(url: str) -> ET.Element:
    return element(q(DAV, "href"), url)


def _serialise(root: ET.Element) -> bytes:
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text
