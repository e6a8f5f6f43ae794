"""Counters of one actor system: a small plain object, cheap to update on the hot path.

The runtime fills ``live_actors``, ``messages_handled`` (added per drained batch, not per
message), ``dead_letters``, ``faults``, ``resets``, ``escalations`` and ``passivations``.
Cluster placement (``actors/placement.py``) fills ``activations_refused`` (another
instance holds the lease) and ``activations_lost``; the persistent layer fills
``conflict_retries`` (commands re-run after a concurrency conflict) and the rest through
:meth:`Metrics.observe_persist` and :meth:`Metrics.observe_replay`.
"""

from __future__ import annotations

import math
from typing import Any


class Timings:
    """A count and sum of durations plus the most recent ones, for p50/p99 on demand.

    The most recent ``capacity`` observations are kept in a ring, so quantiles describe
    current behaviour and memory stays bounded however long the system runs.
    """

    __slots__ = ("_next", "_samples", "capacity", "count", "total")

    def __init__(self, capacity: int = 1024) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.count = 0
        self.total = 0.0
        self._samples: list[float] = []
        self._next = 0

    def observe(self, seconds: float) -> None:
        """Record one duration in seconds."""
        self.count += 1
        self.total += seconds
        if len(self._samples) < self.capacity:
            self._samples.append(seconds)
        else:
            self._samples[self._next] = seconds
            self._next = (self._next + 1) % self.capacity

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1, nearest rank) of the recent observations; None if none."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be within 0..1, got {q}")
        if not self._samples:
            return None
        ordered = sorted(self._samples)
        rank = max(1, math.ceil(q * len(ordered)))
        return ordered[rank - 1]

    @property
    def p50(self) -> float | None:
        return self.quantile(0.5)

    @property
    def p99(self) -> float | None:
        return self.quantile(0.99)

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "sum": self.total, "p50": self.p50, "p99": self.p99}

    def __repr__(self) -> str:
        return f"Timings(count={self.count}, sum={self.total:.6f}, p50={self.p50}, p99={self.p99})"


class Metrics:
    """The counters of one :class:`~actors.ActorSystem` (``system.metrics``)."""

    __slots__ = (
        "activations_lost",
        "activations_refused",
        "conflict_retries",
        "dead_letters",
        "escalations",
        "events_replayed",
        "faults",
        "live_actors",
        "messages_handled",
        "passivations",
        "persist_seconds",
        "persists",
        "replay_seconds",
        "replays",
        "resets",
    )

    def __init__(self) -> None:
        self.live_actors = 0
        self.messages_handled = 0
        self.dead_letters = 0
        self.faults = 0
        self.resets = 0
        self.escalations = 0
        self.passivations = 0
        self.persists = 0
        """Events persisted (one ``persist_all`` of 3 events counts 3)."""
        self.persist_seconds = Timings()
        """One observation per journal write (a ``persist`` or a ``persist_all``)."""
        self.replays = 0
        self.replay_seconds = Timings()
        self.events_replayed = 0
        self.conflict_retries = 0
        self.activations_refused = 0
        self.activations_lost = 0

    def observe_persist(self, seconds: float, events: int = 1) -> None:
        """Record one journal write of ``events`` events that took ``seconds``."""
        self.persists += events
        self.persist_seconds.observe(seconds)

    def observe_replay(self, seconds: float, events: int) -> None:
        """Record one recovery that replayed ``events`` events in ``seconds``."""
        self.replays += 1
        self.events_replayed += events
        self.replay_seconds.observe(seconds)

    def as_dict(self) -> dict[str, Any]:
        """A plain, JSON-friendly copy of every counter."""
        return {
            "live_actors": self.live_actors,
            "messages_handled": self.messages_handled,
            "dead_letters": self.dead_letters,
            "faults": self.faults,
            "resets": self.resets,
            "escalations": self.escalations,
            "passivations": self.passivations,
            "persists": self.persists,
            "persist_seconds": self.persist_seconds.as_dict(),
            "replays": self.replays,
            "replay_seconds": self.replay_seconds.as_dict(),
            "events_replayed": self.events_replayed,
            "conflict_retries": self.conflict_retries,
            "activations_refused": self.activations_refused,
            "activations_lost": self.activations_lost,
        }

    def __repr__(self) -> str:
        return f"Metrics({self.as_dict()})"
