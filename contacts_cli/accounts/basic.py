"""HTTP Basic authentication for Starlette: which user sent this request?

:func:`authenticate` (or :meth:`BasicAuthenticator.authenticate`) returns the user id of a
request with valid Basic credentials, or raises the :class:`~contacts_cli.http.problems.
HttpProblem` to answer it with, in this order:

* 403 when the request came over plain HTTP from an address that is not loopback: the
  password would cross the network in clear (a challenge would invite exactly that), so the
  answer says to use HTTPS and nothing is checked;
* 401 with ``WWW-Authenticate: Basic realm="contacts", charset="UTF-8"`` when there are no
  Basic credentials, or they are malformed;
* 429 with ``Retry-After`` when this name or this address failed too often
  (:mod:`.limiter`), before anything is checked;
* 401, the same answer and after the same time for an unknown name as for a wrong password;
* 503 with ``Retry-After`` when the accounts cannot be read or too many checks wait.

"Over HTTPS" means the request's scheme, which uvicorn sets from its TLS socket, or from
``X-Forwarded-Proto`` sent by a proxy it trusts (``--forwarded-allow-ips``, loopback by
default), as it sets the client address from ``X-Forwarded-For``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable

from starlette.requests import Request

from contacts_cli.accounts.limiter import LoginLimiter
from contacts_cli.backends.errors import BackendError, Invalid
from contacts_cli.http.problems import HttpProblem
from contacts_cli.service.ids import check_user_id
from contacts_cli.service.settings import is_loopback

CHALLENGE = {"WWW-Authenticate": 'Basic realm="contacts", charset="UTF-8"'}
WRONG = "wrong user name or password"
LOGIN = "log in with your contacts user name and password (HTTP Basic)"

Verify = Callable[[str, str], Awaitable[bool]]
"""Whether a name and password match an account (``ServiceBackend.verify_password``)."""


def client_host(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


def secure_transport(request: Request) -> bool:
    """Whether a password may travel on this request: over HTTPS, or from loopback."""
    return request.url.scheme == "https" or is_loopback(client_host(request) or "")


def require_secure_transport(request: Request) -> None:
    """Raise 403 unless :func:`secure_transport` (the answer says to use HTTPS)."""
    if not secure_transport(request):
        raise HttpProblem(403, "passwords are accepted over HTTPS only (or from this "
                               "machine); connect with https://")


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(name, password)`` from an ``Authorization: Basic`` value (UTF-8, RFC 7617); None
    when the header is absent or of another scheme; 401 when it is not valid Basic."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise HttpProblem(401, "the Authorization header is not valid Basic credentials "
                               "(base64 of UTF-8 'name:password')", headers=CHALLENGE) from None
    name, colon, password = decoded.partition(":")
    if not colon:
        raise HttpProblem(401, "the Basic credentials have no ':' between name and password",
                          headers=CHALLENGE)
    return name, password


class BasicAuthenticator:
    """Checks Basic credentials with ``verify``, counting failures in ``limiter``."""

    def __init__(self, verify: Verify, limiter: LoginLimiter) -> None:
        self.verify = verify
        self.limiter = limiter

    async def authenticate(self, request: Request) -> str:
        """The user id the request's Basic credentials belong to; else the problem to
        answer (see the module)."""
        require_secure_transport(request)
        credentials = basic_credentials(request.headers.get("authorization"))
        if credentials is None:
            raise HttpProblem(401, LOGIN, headers=CHALLENGE)
        return await self.check(*credentials, client_host(request))

    async def check(self, name: str, password: str, host: str | None) -> str:
        """``name`` if ``password`` is its password and neither it nor ``host`` is over the
        failed-login limit; else 401, 429 or 503."""
        user: str | None
        try:
            user = check_user_id(name)
        except Invalid:
            user = None  # no account can have this name; counted by address only
        wait = self.limiter.retry_after(user, host)
        if wait is not None:
            raise HttpProblem(429, f"too many failed logins; retry in {wait} s",
                              headers={"Retry-After": str(wait)})
        try:
            matched = user is not None and await self.verify(user, password)
        except BackendError as error:
            raise HttpProblem(503, f"cannot check the password now: {error}",
                              headers={"Retry-After": "1"}) from error
        if not matched or user is None:
            self.limiter.failed(user, host)
            raise HttpProblem(401, WRONG, headers=CHALLENGE)
        return user


async def authenticate(request: Request) -> str:
    """The user id of ``request`` by HTTP Basic, checked by the authenticator ``create_app``
    installs as ``app.state.authenticator``; raises the HttpProblem to answer otherwise.

    For routes served by the main app (``request.app``); routes in a separately built
    Starlette app take the authenticator's bound method instead."""
    authenticator: BasicAuthenticator = request.app.state.authenticator
    return await authenticator.authenticate(request)
