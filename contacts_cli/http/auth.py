"""Bearer-token protection of ``/api``: with a token configured, every API request must carry it.

The comparison is constant time (``hmac.compare_digest``) so response timing does not leak how
much of a guessed token was right. Health, readiness, metrics and the OpenAPI document stay open.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from contacts_cli.http.problems import problem_response


def token_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header value carries exactly ``token`` as a Bearer token."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


class BearerAuth:
    """ASGI middleware answering 401 (problem+json) to an ``/api`` request without the token."""

    def __init__(self, app: ASGIApp, token: str | None, prefix: str = "/api") -> None:
        self.app = app
        self.token = token
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == self.prefix or path.startswith(self.prefix + "/"):
            header = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    header = value.decode("latin-1")
                    break
            if not token_matches(header, self.token):
                detail = (
                    "missing Authorization header; send 'Authorization: Bearer <token>'"
                    if header is None
                    else "the bearer token is not valid"
                )
                challenge = {"WWW-Authenticate": 'Bearer realm="contacts"'}
                response = problem_response(401, detail, instance=path, headers=challenge)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
