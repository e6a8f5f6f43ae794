"""The origin of each API request, made visible to the backend for forwarding.

When the user's actor is active on another instance the backend forwards the call there
(:mod:`contacts_cli.backends.forwarding`) with the credentials of the request being served
and refuses a second hop for a request that was itself forwarded. This middleware reads the
two headers that decide it, ``Authorization`` and ``X-Contacts-Forwarded``, once per request
(pure ASGI: no task, no body buffering).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from contacts_cli.backends.forwarding import FORWARDED_HEADER, RequestOrigin, request_origin

_AUTHORIZATION = b"authorization"
_FORWARDED = FORWARDED_HEADER.lower().encode()


class RequestOriginMiddleware:
    """Serve each ``/api`` and CardDAV (``/dav``) request inside :func:`request_origin`
    with its headers."""

    def __init__(self, app: ASGIApp, prefixes: tuple[str, ...] = ("/api/", "/dav")) -> None:
        self.app = app
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        authorization = forwarded_by = None
        for name, value in scope["headers"]:
            if name == _AUTHORIZATION:
                authorization = value.decode("latin-1")
            elif name == _FORWARDED:
                forwarded_by = value.decode("latin-1") or "unknown"
        with request_origin(RequestOrigin(authorization, forwarded_by)):
            await self.app(scope, receive, send)
