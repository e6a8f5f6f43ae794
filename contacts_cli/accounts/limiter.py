"""Failed logins, counted per user name and per client address (token buckets).

Each name and each address has an allowance of failed logins (``per_user``, ``per_address``)
that refills evenly over ``window`` seconds. A failure spends one; with less than one left,
logins for that name, or from that address, are refused until it has refilled to one: the
caller answers 429 with ``Retry-After``. Successful logins cost nothing.

The check comes before anything else, the credential cache included: a refused attempt
learns nothing, not even whether its password would have been right. Names are counted
whether an account exists or not, so the limiter never tells which names are real. An IPv6
client is counted by its /64 network (one host usually holds a whole /64).

Memory is bounded: each table keeps at most ``max_keys`` entries; past that it forgets the
ones that have refilled, then the least recently failed (an attacker flooding the table from
many addresses wins back some attempts, but never makes the process grow).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]

DEFAULT_PER_USER = 10
DEFAULT_PER_ADDRESS = 50
DEFAULT_WINDOW = 600.0
DEFAULT_MAX_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class LoginLimits:
    """Failed logins allowed per user name and per client address, refilled over ``window``."""

    per_user: int = DEFAULT_PER_USER
    per_address: int = DEFAULT_PER_ADDRESS
    window: float = DEFAULT_WINDOW


class _Buckets:
    """Token buckets by key: ``capacity`` tokens, refilled at ``capacity / window`` per second."""

    def __init__(self, capacity: int, window: float, max_keys: int) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / window
        self.max_keys = max_keys
        self.entries: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def tokens(self, key: str, now: float) -> float:
        entry = self.entries.get(key)
        if entry is None:
            return self.capacity
        tokens, stamp = entry
        return min(self.capacity, tokens + (now - stamp) * self.rate)

    def wait(self, key: str, now: float) -> float:
        """Seconds until ``key`` has one token again (0: it has one now)."""
        missing = 1.0 - self.tokens(key, now)
        return missing / self.rate if missing > 0 else 0.0

    def spend(self, key: str, now: float) -> None:
        tokens = max(0.0, self.tokens(key, now) - 1.0)
        self.entries.pop(key, None)
        self.entries[key] = (tokens, now)
        if len(self.entries) > self.max_keys:
            self._prune(now)

    def _prune(self, now: float) -> None:
        for key in [k for k in self.entries if self.tokens(k, now) >= self.capacity]:
            del self.entries[key]
        while len(self.entries) > self.max_keys:
            self.entries.popitem(last=False)


def address_key(host: str | None) -> str:
    """The key a client address is counted under: an IPv4 address as it is, an IPv6 one by
    its /64 network (an IPv4-mapped one as the IPv4 address), anything else as given."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class LoginLimiter:
    """Refuses logins for a name, or from an address, that failed too often; see the module."""

    def __init__(self, limits: LoginLimits | None = None, *, clock: Clock = time.monotonic,
                 max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self.limits = limits or LoginLimits()
        self.clock = clock
        self._users = _Buckets(self.limits.per_user, self.limits.window, max_keys)
        self._addresses = _Buckets(self.limits.per_address, self.limits.window, max_keys)

    def retry_after(self, user: str | None, host: str | None) -> int | None:
        """Whole seconds until a login for ``user`` from ``host`` may be tried, or None if it
        may be tried now. ``user`` None: a name that cannot exist, counted by address only."""
        now = self.clock()
        wait = self._addresses.wait(address_key(host), now)
        if user is not None:
            wait = max(wait, self._users.wait(user, now))
        return math.ceil(wait) if wait > 0 else None

    def failed(self, user: str | None, host: str | None) -> None:
        """Count one failed login for ``user`` (unless None) and for ``host``."""
        now = self.clock()
        self._addresses.spend(address_key(host), now)
        if user is not None:
            self._users.spend(user, now)
