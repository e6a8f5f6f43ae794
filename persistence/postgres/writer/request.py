"""One caller's append as the group-commit writer queues it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from persistence.engine import Json, NewEvent, StoredEvent
from persistence.leases import Lease


@dataclass(slots=True)
class AppendRequest:
    """One caller's append, waiting for its batch; its arguments are already checked."""

    persistence_id: str
    expected_sequence_nr: int
    events: Sequence[NewEvent]
    payloads: str
    """The events' payloads as one JSON array text (:func:`~persistence.engine.encode_payloads`)."""
    copies: list[Json]
    """The payloads decoded from that text: the callers' own copies, as a replay gives them."""
    future: asyncio.Future[list[StoredEvent]] = field(repr=False)
    fence: Lease | None = None
    """The lease the append must still hold when it executes (``None``: unfenced)."""

    def describe(self) -> str:
        """``append of N event(s) to 'id' at sequence_nr K``: how every failure names it."""
        return (
            f"append of {len(self.events)} event(s) to {self.persistence_id!r} at "
            f"sequence_nr {self.expected_sequence_nr + 1}"
        )
