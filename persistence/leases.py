"""The fencing token of cluster placement, as the engine contract knows it.

A :class:`Lease` is what a fenced write carries (``Engine.append(..., fence=lease)``): the
write lands only while that lease is still its key's current one. :class:`HeldElsewhere` is
the answer to an activation another live instance holds. Plain values, importable without
the placement store (and without a database driver): the runtime and every engine use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Lease:
    """A user's activation right: held by ``owner`` at ``epoch`` (the fencing token)."""

    key: str
    owner: str
    epoch: int
    acquired_at: datetime
    taken_over_from: str | None = None
    """The owner whose registration had expired when this lease was taken from it."""


@dataclass(frozen=True, slots=True)
class HeldElsewhere:
    """The user is active on another live instance: forward to ``address`` (``None``: it
    takes no forwarded requests, e.g. a short ``contacts --local`` command; retry soon)."""

    key: str
    owner: str
    epoch: int
    address: str | None
    draining: bool
