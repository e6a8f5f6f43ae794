"""When a snapshot is due: small policy objects, shared by every actor that uses them.

A strategy only decides; the snapshot path (``actors/snapshots.py``) keeps each actor's
bookkeeping (the last snapshot, the one in flight, deferral) and asks the strategy after every
persisted event (class API) or after every command that persisted (functional API).

Strategies are *level-triggered*: "due" means "the journal is far enough past the last
snapshot", judged against :class:`LastSnapshot`, not "this exact event is special". So a
snapshot that was skipped (one still in flight, deferred) or failed (its mark rolled back) is
due again at the next event, and the schedule needs no memory of its own. The exception is
:class:`When`, whose user function is asked about each event as it comes.

* :class:`Every` (``snapshot_every=N``): a multiple of N was passed since the last
  snapshot, i.e. at the multiples themselves while snapshots succeed;
* :class:`When` (``snapshot_when``): a user function of (sequence_nr, state, event);
* :class:`Amortised`: ``sequence_nr - last >= max(every, factor * size of the last
  snapshot)``, with the size from an actor-provided ``measure``: encoding costs time in
  proportion to the state, so spacing snapshots in proportion to it keeps their cost
  amortised O(1) per event while a crash replays a bounded share of the journal;
* :class:`AnyOf`: due when any member is due (``snapshot_every`` with ``snapshot_when``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

S = TypeVar("S")

SnapshotWhen = Callable[[int, S, Any], bool]
"""``(sequence_nr, state after the event, event) -> bool``: whether to snapshot there."""


@dataclass(frozen=True, slots=True)
class LastSnapshot:
    """The actor's latest snapshot: its ``sequence_nr`` (0: none) and the ``size`` its
    strategy measured of the state it holds (0 if the strategy measures nothing)."""

    sequence_nr: int = 0
    size: int = 0


NO_SNAPSHOT = LastSnapshot()


def check_positive(value: object, name: str) -> int:
    """``value`` if it is a positive integer (not a bool), else ValueError naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class SnapshotStrategy(ABC, Generic[S]):
    """Decides when a snapshot is due; holds no per-actor state (one instance may serve many
    actors, e.g. as a class attribute)."""

    @abstractmethod
    def due(self, sequence_nr: int, last: LastSnapshot, state: S, event: Any) -> bool:
        """Whether a snapshot is due right after the event numbered ``sequence_nr``
        (``state`` is the state after it; ``event`` the event, or in the functional API the
        command whose events moved the journal to ``sequence_nr``)."""

    def measure(self, state: S) -> int:
        """The size recorded with each snapshot (see :class:`LastSnapshot`); 0 by default."""
        return 0

    def behind(self, sequence_nr: int, last: LastSnapshot) -> bool:
        """Whether a graceful stop should snapshot (with ``snapshot_on_stop``): by default
        whenever an event was written since the last snapshot."""
        return sequence_nr > last.sequence_nr


class Every(SnapshotStrategy[Any]):
    """Due when a multiple of ``every`` lies after the last snapshot: at exactly the
    multiples while snapshots succeed, at the next event after one failed or was skipped."""

    __slots__ = ("every",)

    def __init__(self, every: int) -> None:
        self.every = check_positive(every, "snapshot_every")

    def __repr__(self) -> str:
        return f"Every({self.every})"

    def due(self, sequence_nr: int, last: LastSnapshot, state: Any, event: Any) -> bool:
        return sequence_nr // self.every > last.sequence_nr // self.every

    def behind(self, sequence_nr: int, last: LastSnapshot) -> bool:
        return sequence_nr - last.sequence_nr >= self.every


class When(SnapshotStrategy[S]):
    """Due when ``when(sequence_nr, state, event)`` says so."""

    __slots__ = ("when",)

    def __init__(self, when: SnapshotWhen[S]) -> None:
        self.when = when

    def __repr__(self) -> str:
        return f"When({self.when!r})"

    def due(self, sequence_nr: int, last: LastSnapshot, state: S, event: Any) -> bool:
        return bool(self.when(sequence_nr, state, event))


class Amortised(SnapshotStrategy[S]):
    """Due once ``max(every, factor * size)`` events were written since the last snapshot,
    ``size`` being ``measure(state)`` when that snapshot was taken (or recovered).

    With ``factor=2`` a state of n items is snapshotted at most every 2n events, so the O(n)
    encoding costs O(1) per event, and a crash replays at most about two thirds of the journal.
    """

    __slots__ = ("every", "factor", "size_of")

    def __init__(self, every: int, *, factor: int = 2, measure: Callable[[S], int]) -> None:
        self.every = check_positive(every, "every")
        self.factor = check_positive(factor, "factor")
        self.size_of = measure

    def __repr__(self) -> str:
        return f"Amortised(every={self.every}, factor={self.factor})"

    def due(self, sequence_nr: int, last: LastSnapshot, state: S, event: Any) -> bool:
        return sequence_nr - last.sequence_nr >= max(self.every, self.factor * last.size)

    def measure(self, state: S) -> int:
        return self.size_of(state)

    def behind(self, sequence_nr: int, last: LastSnapshot) -> bool:
        return sequence_nr - last.sequence_nr >= self.every


class AnyOf(SnapshotStrategy[S]):
    """Due when any of ``strategies`` is; measured by the first; behind when any is."""

    __slots__ = ("strategies",)

    def __init__(self, *strategies: SnapshotStrategy[S]) -> None:
        if not strategies:
            raise ValueError("AnyOf needs at least one strategy")
        self.strategies = strategies

    def __repr__(self) -> str:
        return f"AnyOf{self.strategies!r}"

    def due(self, sequence_nr: int, last: LastSnapshot, state: S, event: Any) -> bool:
        return any(s.due(sequence_nr, last, state, event) for s in self.strategies)

    def measure(self, state: S) -> int:
        return self.strategies[0].measure(state)

    def behind(self, sequence_nr: int, last: LastSnapshot) -> bool:
        return any(s.behind(sequence_nr, last) for s in self.strategies)


def strategy_from(
    every: int | None, when: SnapshotWhen[S] | None
) -> SnapshotStrategy[S] | None:
    """The strategy of the ``snapshot_every`` / ``snapshot_when`` settings (None: neither)."""
    members: list[SnapshotStrategy[S]] = []
    if every is not None:
        members.append(Every(every))
    if when is not None:
        members.append(When(when))
    if not members:
        return None
    return members[0] if len(members) == 1 else AnyOf(*members)
