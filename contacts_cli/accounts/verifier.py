"""Checking a name and password, with a short cache of the checks that succeeded.

A CardDAV client sends its password with every request, and an argon2id verification costs
about 150 ms of CPU (Radicale users measured 2.7 s per PROPFIND with bcrypt on every request,
Radicale#1466). So a successful check is remembered for ``ttl`` seconds, and concurrent
checks of the same credentials share one verification.

The cache can never outlive a password: an entry holds the stored hash it was verified
against, and every check first reads the account's current hash (from its actor's memory,
no argon2, no database once the actor is live). A changed password has a new hash (a new
salt) and a removed account has none, so either misses the cache at once, in this process
and in any other that reads the same account. Entries hold an HMAC-SHA256 of the password
under a key drawn at start, never the password; they live ``ttl`` seconds and exist only for
correct passwords.

An unknown name costs a verification against a decoy hash, so a wrong name and a wrong
password take the same time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from contacts_cli.accounts.hashing import PasswordHashing
from contacts_cli.accounts.limiter import Clock

DEFAULT_TTL = 60.0
DEFAULT_MAX_ENTRIES = 10_000

Lookup = Callable[[str], Awaitable[str | None]]
"""The stored hash of an account (PHC string), None when there is no such account."""


@dataclass(frozen=True, slots=True)
class _Entry:
    stored: str
    digest: bytes
    expires: float


class Verifier:
    """``await verify(name, password)``: whether they match an account; see the module."""

    def __init__(self, lookup: Lookup, hashing: PasswordHashing, *, ttl: float = DEFAULT_TTL,
                 clock: Clock = time.monotonic, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.lookup = lookup
        self.hashing = hashing
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        self.verifications = 0
        """Verifications actually computed (not answered from the cache): for tests, metrics."""
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._pending: dict[tuple[str, str, bytes], asyncio.Task[bool]] = {}

    def _digest(self, password: str) -> bytes:
        return hmac.digest(self._key, password.encode("utf-8", "surrogatepass"), hashlib.sha256)

    async def verify(self, name: str, password: str) -> bool:
        """Whether ``password`` is the password of the account ``name`` (False if none)."""
        stored = await self.lookup(name)
        if stored is None:
            self.forget(name)
            return await self.hashing.verify_decoy(password)
        digest = self._digest(password)
        entry = self._entries.get(name)
        if (entry is not None and entry.stored == stored and entry.expires > self.clock()
                and hmac.compare_digest(entry.digest, digest)):
            return True
        matched = await self._verify_once(name, stored, password, digest)
        if matched:
            self._remember(name, _Entry(stored, digest, self.clock() + self.ttl))
        return matched

    async def _verify_once(self, name: str, stored: str, password: str, digest: bytes) -> bool:
        """One verification per distinct (name, hash, password) in flight, however many
        requests ask for it (a client opening several connections at once)."""
        key = (name, stored, digest)
        task = self._pending.get(key)
        if task is None:
            self.verifications += 1
            task = asyncio.ensure_future(self.hashing.verify(stored, password))
            self._pending[key] = task
            task.add_done_callback(lambda done: self._settled(key, done))
        return await asyncio.shield(task)

    def _settled(self, key: tuple[str, str, bytes], task: asyncio.Task[bool]) -> None:
        self._pending.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here too, in case every waiter went away

    def _remember(self, name: str, entry: _Entry) -> None:
        self._entries.pop(name, None)
        self._entries[name] = entry
        if len(self._entries) > self.max_entries:
            now = self.clock()
            for expired in [k for k, e in self._entries.items() if e.expires <= now]:
                del self._entries[expired]
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget(self, name: str) -> None:
        """Drop what is cached for ``name`` (after its password changed or it was removed;
        the stored-hash check would miss anyway, this frees the entry at once)."""
        self._entries.pop(name, None)
