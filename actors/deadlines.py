"""Query timeouts without one event-loop timer per query.

A timer per query (``call_later`` + ``cancel``) costs more than the rest of a query round
trip together. Queries are instead grouped by deadline into buckets of ``RESOLUTION``
seconds; one timer per bucket fails whatever is still pending in it. A query therefore
never times out early, and at most ``RESOLUTION`` seconds late.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actors.ref import ReplyRef

RESOLUTION = 0.01


class QueryDeadlines:
    """The pending queries of one event loop, bucketed by deadline."""

    __slots__ = ("_buckets", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._buckets: dict[int, set[ReplyRef]] = {}

    def add(self, reply: ReplyRef, timeout: float) -> int:
        """Watch ``reply``; return the bucket key to hand to :meth:`discard`."""
        key = math.ceil((self._loop.time() + timeout) / RESOLUTION)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = set()
            self._loop.call_at(key * RESOLUTION, self._expire, key)
        bucket.add(reply)
        return key

    def discard(self, reply: ReplyRef, key: int) -> None:
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.discard(reply)

    def _expire(self, key: int) -> None:
        for reply in self._buckets.pop(key, ()):
            reply.expire()
