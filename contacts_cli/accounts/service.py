"""The accounts as a backend offers them: add, change a password, remove, verify.

The in-process backend gives :class:`Accounts` a way to ask an account's actor
(:mod:`.store`); this class checks passwords (:func:`~.passwords.check_password`), hashes
them off the event loop, and keeps the verifier's cache in step with every change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from contacts_cli.accounts.hashing import PasswordHashing
from contacts_cli.accounts.passwords import check_password
from contacts_cli.accounts.store import (
    Account,
    AccountMessage,
    AddAccount,
    GetAccount,
    RemoveAccount,
    SetPassword,
)
from contacts_cli.accounts.verifier import DEFAULT_TTL, Verifier
from contacts_cli.service.ids import check_user_id

Ask = Callable[[str, AccountMessage], Awaitable[Any]]
"""Send a message to the actor of one account and return its reply (raising a refusal)."""


class Accounts:
    """Account operations over ``ask``; see the module."""

    def __init__(self, ask: Ask, hashing: PasswordHashing | None = None, *,
                 cache_seconds: float = DEFAULT_TTL) -> None:
        self.ask = ask
        self.hashing = hashing or PasswordHashing()
        self.verifier = Verifier(self.password_hash, self.hashing, ttl=cache_seconds)

    async def password_hash(self, name: str) -> str | None:
        """The stored hash of the account ``name``, None if there is none."""
        account: Account | None = await self.ask(name, GetAccount())
        return account.password_hash if account is not None else None

    async def add(self, name: str, password: str) -> dict[str, Any]:
        """Create the account (``Conflict`` if it exists, ``Invalid`` for a bad password)."""
        check_user_id(name)
        hashed = await self.hashing.hash(check_password(password))
        account: Account = await self.ask(name, AddAccount(hashed))
        return account.public()

    async def set_password(self, name: str, password: str) -> dict[str, Any]:
        """Replace the password (``NotFound`` if there is no account); effective at once."""
        check_user_id(name)
        hashed = await self.hashing.hash(check_password(password))
        account: Account = await self.ask(name, SetPassword(hashed))
        self.verifier.forget(name)
        return account.public()

    async def remove(self, name: str) -> dict[str, Any]:
        """Delete the account (``NotFound`` if there is none); its contacts stay."""
        check_user_id(name)
        account: Account = await self.ask(name, RemoveAccount())
        self.verifier.forget(name)
        return account.public()

    async def verify(self, name: str, password: str) -> bool:
        """Whether ``password`` is the password of ``name`` (cached briefly, see .verifier)."""
        return await self.verifier.verify(name, password)

    def close(self) -> None:
        self.hashing.close()
