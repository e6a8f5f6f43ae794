"""The CardDAV routes: discovery, PROPFIND/PROPPATCH/REPORT, and GET/PUT/DELETE of cards.

:func:`carddav_routes` builds them around a backend and an ``authenticate`` callable (the
service's accounts; it returns the user id or raises the 401 problem). Every request but
OPTIONS and the well-known redirect is authenticated, and a user reaches only their own
principal and address book (403 ``DAV:need-privileges`` otherwise).

Writes go through the same user actor as the CLI and REST (``PutCard``, ``RemoveContact``),
so each is an event in the user's journal; a card's ETag is its contact's version, and a
stale ``If-Match`` (or ``If-None-Match: *`` on an existing card) is answered 412 having
written nothing. Errors are WebDAV error bodies naming the failed precondition.

In a cluster (``docs/cluster.md``) a request for a user whose actor is active on another
instance is relayed there whole (:meth:`~contacts_cli.backends.base.ServiceBackend.relay`),
so the sync token, the ETags and the listing all come from the user's one activation.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from contacts_cli.backends.base import ServiceBackend
from contacts_cli.backends.errors import Conflict, Invalid, NotFound
from contacts_cli.carddav import urls
from contacts_cli.carddav.davxml import CARDDAV, DAV, DavError, q
from contacts_cli.carddav.properties import MAX_RESOURCE_BYTES, etag, http_date
from contacts_cli.carddav.propfind import depth_of, propfind, proppatch
from contacts_cli.carddav.rendered import card_text
from contacts_cli.carddav.reports import report
from contacts_cli.carddav.vcard import (
    CONTENT_TYPE,
    DEFAULT_VERSION,
    CardError,
    parse_card,
)
from contacts_cli.domain import Contact
from contacts_cli.service.messages import PutCard

Authenticate = Callable[[Request], Awaitable[str]]
"""The user id a request is authenticated as; raises the problem that answers 401."""
BackendSource = Callable[[], ServiceBackend]
"""The backend to serve from, looked up per request (the app opens it at startup)."""

MAX_XML_BYTES = 8 * 1024 * 1024
"""The largest PROPFIND/REPORT body (a multiget of 20,000 cards names ~1.2 MB of hrefs)."""
DAV_CLASSES = "1, 3, addressbook"
CARD_TYPES = frozenset(("text/vcard", "text/x-vcard", "text/directory"))
_ALLOWED = {
    "root": ("OPTIONS", "PROPFIND"),
    "principal": ("OPTIONS", "PROPFIND", "PROPPATCH"),
    "book": ("OPTIONS", "PROPFIND", "PROPPATCH", "REPORT"),
    "card": ("OPTIONS", "GET", "HEAD", "PUT", "DELETE", "PROPFIND", "PROPPATCH"),
}
_SERVED_BY_THE_ACTOR = frozenset(("book", "card"))
"""The targets whose answers come from the user's actor (the root and principal do not)."""
_METHODS = sorted({m for methods in _ALLOWED.values() for m in methods}
                  | {"POST", "PATCH", "MKCOL", "MOVE", "COPY", "LOCK", "UNLOCK"})
_VERSION_PARAM = re.compile(r"version\s*=\s*\"?([0-9.]+)", re.IGNORECASE)
_ETAG = re.compile(r'\s*(?:W/)?"([^"]*)"\s*')


def carddav_routes(backend: BackendSource, *, authenticate: Authenticate,
                   region: str | None = None) -> list[BaseRoute]:
    """The routes to mount in the service's app (see the module docstring)."""
    service = _CardDav(backend, authenticate, region)
    return [
        Route("/.well-known/carddav", _well_known, methods=["GET", "PROPFIND", "OPTIONS"]),
        Route("/", service.handle, methods=["PROPFIND", "OPTIONS"]),
        Route("/dav", service.handle, methods=_METHODS),
        Route("/dav/{path:path}", service.handle, methods=_METHODS),
    ]


async def _relay(request: Request, backend: ServiceBackend, user: str,
                 address: str) -> Response:
    """The answer of the instance at ``address``, which hosts ``user``, to this request."""
    body = await _body(request, max(MAX_XML_BYTES, MAX_RESOURCE_BYTES))
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    relayed = await backend.relay(user, address, request.method, target, request.headers,
                                  body)
    response = Response(relayed.body, status_code=relayed.status)
    for name, value in relayed.headers:
        response.headers.append(name, value)
    return response


async def _well_known(request: Request) -> Response:
    """RFC 6764: the service's context path."""
    return Response(status_code=301, headers={"Location": urls.ROOT})


class _CardDav:
    def __init__(self, backend: BackendSource, authenticate: Authenticate,
                 region: str | None) -> None:
        self.backend = backend
        self.authenticate = authenticate
        self.region = region

    async def handle(self, request: Request) -> Response:
        path: str = request.scope["path"]
        try:
            target = urls.parse_path(urls.ROOT if path == "/" else path)
            if target is None:
                raise DavError(404, f"nothing is at {path}")
            allowed = _ALLOWED[target.kind]
            method = request.method
            if method == "OPTIONS":
                return Response(headers={"DAV": DAV_CLASSES, "Allow": ", ".join(allowed)})
            user = await self.authenticate(request)
            if target.user and target.user != user:
                raise DavError(403, f"{path} belongs to another user", q(DAV, "need-privileges"))
            if method not in allowed:
                raise DavError(405, f"{method} is not allowed on {path}",
                               headers={"Allow": ", ".join(allowed)})
            if target.problem:
                raise DavError(400 if method == "PUT" else 404, target.problem)
            return await self._serve(request, method, user, target)
        except DavError as error:
            return error.response()

    async def _serve(self, request: Request, method: str, user: str,
                     target: urls.Target) -> Response:
        backend = self.backend()
        if (target.kind in _SERVED_BY_THE_ACTOR and method != "PROPPATCH"
                and (address := await backend.host_of(user)) is not None):
            return await _relay(request, backend, user, address)
        if method == "PROPFIND":
            depth = depth_of(request.headers.get("depth"))
            body = await _body(request, MAX_XML_BYTES)
            return (await propfind(backend, user, target, depth, body)).response()
        if method == "REPORT":
            return (await report(backend, user, target, await _body(request, MAX_XML_BYTES)
                                 )).response()
        if method == "PROPPATCH":
            return proppatch(request.url.path, await _body(request, MAX_XML_BYTES)).response()
        if method in ("GET", "HEAD"):
            return await self._get(request, backend, user, target.contact_id)
        if method == "PUT":
            return await self._put(request, backend, user, target.contact_id)
        return await self._delete(request, backend, user, target.contact_id)

    async def _get(self, request: Request, backend: ServiceBackend, user: str,
                   contact_id: str) -> Response:
        contact = await _current(backend, user, contact_id)
        if contact is None:
            raise DavError(404, f"no card {contact_id!r} in this address book")
        headers = {"ETag": etag(contact),
                   "Last-Modified": http_date(contact)}
        if etag(contact) in _etags(request.headers.get("if-none-match")):
            return Response(status_code=304, headers=headers)
        body = card_text(contact, _accepted_version(request.headers.get("accept"))).encode()
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            body = b""
        return Response(body, headers=headers, media_type=CONTENT_TYPE)

    async def _put(self, request: Request, backend: ServiceBackend, user: str,
                   contact_id: str) -> Response:
        text = _card_text(request, await _body(request, MAX_RESOURCE_BYTES,
                                               q(CARDDAV, "max-resource-size")))
        try:
            parsed = parse_card(text, region=self.region)
        except CardError as exc:
            status = 415 if exc.precondition == "supported-address-data" else 400
            raise DavError(status, str(exc), q(CARDDAV, exc.precondition)) from None
        expected, _ = await _if_match(request, backend, user, contact_id)
        create_only = request.headers.get("if-none-match", "").strip() == "*"
        put = PutCard(contact_id, parsed.fields, parsed.card, expected, create_only)
        try:
            reply = await backend.put_card(user, put)
        except (Conflict, NotFound) as exc:
            raise DavError(412, str(exc)) from None
        except Invalid as exc:
            raise DavError(400, str(exc), q(CARDDAV, "valid-address-data")) from None
        return Response(status_code=201 if reply.created else 204,
                        headers={"ETag": etag(reply.contact)})

    async def _delete(self, request: Request, backend: ServiceBackend, user: str,
                      contact_id: str) -> Response:
        expected, must_exist = await _if_match(request, backend, user, contact_id)
        try:
            await backend.remove(user, contact_id, expected)
        except NotFound as exc:
            raise DavError(412 if must_exist else 404, str(exc)) from None
        except Conflict as exc:
            raise DavError(412, str(exc)) from None
        return Response(status_code=204)


async def _current(backend: ServiceBackend, user: str, contact_id: str) -> Contact | None:
    return (await backend.cards(user, (contact_id,))).contacts.get(contact_id)


async def _if_match(request: Request, backend: ServiceBackend, user: str,
                    contact_id: str) -> tuple[int | None, bool]:
    """The version ``If-Match`` requires (``None`` without the header) and whether it
    requires the card to exist; a version that cannot be the card's fails at once (412)."""
    header = request.headers.get("if-match")
    if header is None:
        return None, False
    tags = _etags(header)
    if header.strip() != "*" and len(tags) == 1 and tags[0].strip('"').isdigit():
        return int(tags[0].strip('"')), True
    contact = await _current(backend, user, contact_id)
    if contact is None or (header.strip() != "*" and etag(contact) not in tags):
        raise DavError(412, f"If-Match {header.strip()[:100]} does not match the card")
    return contact.version, True


def _etags(header: str | None) -> list[str]:
    """The entity tags of an If-Match/If-None-Match header, quoted, weakness dropped."""
    if not header:
        return []
    return [f'"{m.group(1)}"' for part in header.split(",") if (m := _ETAG.fullmatch(part))]


def _accepted_version(accept: str | None) -> str:
    """The vCard version an Accept header asks for (``text/vcard; version=4.0``)."""
    for media_range in (accept or "").split(","):
        media, _, params = media_range.partition(";")
        m = _VERSION_PARAM.search(params)
        if media.strip().lower() in CARD_TYPES and m and m.group(1) in ("3.0", "4.0"):
            return m.group(1)
    return DEFAULT_VERSION


def _card_text(request: Request, body: bytes) -> str:
    """A PUT body as text: a vCard media type, in UTF-8 (or the charset it names)."""
    content_type = request.headers.get("content-type", "text/vcard")
    media, _, params = content_type.partition(";")
    if media.strip().lower() not in CARD_TYPES:
        raise DavError(415, f"a card is text/vcard, not {media.strip()!r}",
                       q(CARDDAV, "supported-address-data"))
    charset = "utf-8"
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    try:
        return body.decode(charset)
    except LookupError:
        raise DavError(415, f"charset {charset!r} is unknown",
                       q(CARDDAV, "supported-address-data")) from None
    except UnicodeDecodeError as exc:
        raise DavError(400, f"the card is not valid {charset} at byte {exc.start}",
                       q(CARDDAV, "valid-address-data")) from None


async def _body(request: Request, limit: int, precondition: str | None = None) -> bytes:
    """The request body, refused with 413 once it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    too_large = DavError(413, f"the body is larger than {limit} bytes", precondition)
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
