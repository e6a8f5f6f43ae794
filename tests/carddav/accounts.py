"""A test-only authenticator for the CardDAV routes: a fixed table of users and passwords.

The service's real accounts (argon2 hashes, rate limiting) are built elsewhere; the routes
take any ``authenticate`` callable, and the tests give them this one. It checks HTTP Basic
credentials in constant time and answers 401 with the challenge clients expect.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.requests import Request

from contacts_cli.http.problems import HttpProblem

CHALLENGE = {"WWW-Authenticate": 'Basic realm="contacts"'}


class StaticAccounts:
    """``await accounts(request)`` -> the user id, or :class:`HttpProblem` 401."""

    def __init__(self, passwords: dict[str, str]) -> None:
        self.passwords = {user: password.encode() for user, password in passwords.items()}

    async def __call__(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            raise HttpProblem(401, "send HTTP Basic credentials", headers=CHALLENGE)
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise HttpProblem(401, "malformed Basic credentials", headers=CHALLENGE) from None
        expected = self.passwords.get(user, b"\0" * 16)
        matches = hmac.compare_digest(password.encode(), expected)
        if not matches or user not in self.passwords:
            raise HttpProblem(401, "wrong user name or password", headers=CHALLENGE)
        return user


def accounts_from_text(text: str) -> StaticAccounts:
    """``"alice:secret,bob:hunter2"`` as accounts (how the test server gets them)."""
    pairs = (item.split(":", 1) for item in text.split(",") if item)
    return StaticAccounts({user: password for user, password in pairs})
