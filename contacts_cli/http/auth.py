"""Who may use ``/api`` and ``/admin``: the service token, an account by HTTP Basic, or loopback.

Checked for every request under those prefixes, before routing:

* ``Authorization: Bearer <CONTACTS_API_TOKEN>``: everything (what the CLI sends in client
  mode). The comparison is constant time (``hmac.compare_digest``), so response timing does
  not leak how much of a guessed token was right.
* ``Authorization: Basic``: an account (:mod:`contacts_cli.accounts.basic`: HTTPS or
  loopback only, rate-limited); it reaches its own ``/api/<name>/...`` and nothing else (403).
* No credentials: allowed from a loopback address when no token is configured (the service
  then has no other protection, as before accounts existed); otherwise 401, challenging for
  the token and, where a password may be sent, for Basic.

Health, readiness, metrics and the OpenAPI document stay open.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from contacts_cli.accounts.basic import (
    CHALLENGE,
    LOGIN,
    BasicAuthenticator,
    require_secure_transport,
    secure_transport,
)
from contacts_cli.http.problems import HttpProblem, problem_response
from contacts_cli.service.settings import is_loopback

PROTECTED = ("/api", "/admin")
BEARER_CHALLENGE = 'Bearer realm="contacts"'


def token_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header value carries exactly ``token`` as a Bearer token."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def own_path(path: str, user: str) -> bool:
    """Whether ``path`` is one of ``user``'s routes (``/api/<user>/...``)."""
    return path.startswith(f"/api/{user}/")


class ApiAuth:
    """ASGI middleware answering 401, 403, 429 or 503 (problem+json) to a request under
    :data:`PROTECTED` that may not proceed; see the module."""

    def __init__(self, app: ASGIApp, token: str | None,
                 authenticator: BasicAuthenticator) -> None:
        self.app = app
        self.token = token
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        try:
            await self.check(request)
        except HttpProblem as refused:
            headers = dict(refused.headers)
            basic = headers.pop("WWW-Authenticate", None)
            response = problem_response(refused.status, refused.detail,
                                        instance=scope["path"], headers=headers)
            if refused.status == 401:  # one challenge per header line, the token's first
                if self.token is not None:
                    response.headers.append("WWW-Authenticate", BEARER_CHALLENGE)
                if basic is not None:
                    response.headers.append("WWW-Authenticate", basic)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def check(self, request: Request) -> None:
        """Return if the request may proceed; else raise the problem to answer."""
        header = request.headers.get("authorization")
        scheme = header.strip().partition(" ")[0].lower() if header else ""
        if scheme == "bearer" and self.token is not None:
            if not token_matches(header, self.token):
                raise HttpProblem(401, "the bearer token is not valid")
            return
        if scheme == "basic":
            user = await self.authenticator.authenticate(request)
            if not own_path(request.url.path, user):
                raise HttpProblem(403, f"user {user!r} may use only /api/{user}/...")
            return
        client = request.client.host if request.client is not None else ""
        if self.token is None and is_loopback(client):
            return
        if self.token is None:
            require_secure_transport(request)
            raise HttpProblem(401, LOGIN, headers=CHALLENGE)
        raise HttpProblem(401, "missing Authorization header; send 'Authorization: Bearer "
                               "<token>' or, for your own contacts, your user name and "
                               "password (HTTP Basic)",
                          headers=CHALLENGE if secure_transport(request) else None)


def _protected(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in PROTECTED)
