"""The recovery path: latest usable snapshot, then the events after it, streamed and checked.

Recovery starts with one call, :meth:`~persistence.engine.Engine.recovery_start`: the
journal's highest sequence number, the latest snapshot at or below it (a snapshot beyond it,
of events the journal no longer holds, cannot be trusted and is ignored) and the first page
of events after that snapshot. Engines share that call's round trips among actors recovering
at once (the PostgreSQL engine answers them with one query). Recovery then replays from the
last event + 1 up to that highest number, page by page, so a long journal is never held in
memory: at most one page of ``page_size`` events at a time. It checks that the numbers run
without a gap from the snapshot's + 1 to the highest: a gap (events lost, or deleted without
a snapshot covering them) raises :class:`~persistence.errors.JournalIntegrityError` rather
than producing a state that silently misses events.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from persistence.engine import Engine, Snapshot, StoredEvent
from persistence.errors import JournalIntegrityError

S = TypeVar("S")

DEFAULT_PAGE_SIZE = 500


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What one recovery did: shown by ``ctx.last_recovery`` and recorded in the metrics."""

    persistence_id: str
    events_replayed: int
    snapshot_sequence_nr: int | None
    sequence_nr: int
    seconds: float


async def recover(
    engine: Engine,
    persistence_id: str,
    *,
    initial: Callable[[], S],
    restore: Callable[[Snapshot], S],
    apply: Callable[[S, StoredEvent], Awaitable[S]],
    page_size: int = DEFAULT_PAGE_SIZE,
) -> tuple[S, RecoveryReport]:
    """Rebuild the state of ``persistence_id``; return it and a report.

    ``initial()`` is the state with no snapshot, ``restore(snapshot)`` the state from a snapshot
    (any error there fails recovery as a JournalIntegrityError: no silent fallback to
    a partial replay), and ``apply(state, event)`` folds one stored event. An error raised by
    ``apply`` propagates unchanged, with a note naming the event, so supervision sees it.
    """
    if page_size < 1:
        raise ValueError(f"page_size must be >= 1, got {page_size}")
    started = time.perf_counter()
    start = await engine.recovery_start(persistence_id, page_size)
    highest = start.highest_sequence_nr
    snapshot = start.snapshot
    state = _restore(snapshot, restore) if snapshot is not None else initial()
    snapshot_seq = snapshot.sequence_nr if snapshot is not None else None
    first = (snapshot_seq or 0) + 1
    state, expected = await _fold(persistence_id, snapshot_seq, state, first, start.events, apply)
    while expected <= highest:
        page = await _page(engine, persistence_id, expected, highest, page_size)
        if not page:
            raise _gap(persistence_id, expected, None, snapshot_seq, highest)
        state, expected = await _fold(persistence_id, snapshot_seq, state, expected, page, apply)
    report = RecoveryReport(
        persistence_id, expected - first, snapshot_seq, highest, time.perf_counter() - started
    )
    return state, report


async def _page(
    engine: Engine, persistence_id: str, first: int, highest: int, page_size: int
) -> list[StoredEvent]:
    """The next page of the replay: at most ``page_size`` events from ``first`` on."""
    events = engine.replay(persistence_id, first, highest, max_count=page_size)
    try:
        return [event async for event in events]
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


async def _fold(
    persistence_id: str,
    snapshot_seq: int | None,
    state: S,
    expected: int,
    events: Sequence[StoredEvent],
    apply: Callable[[S, StoredEvent], Awaitable[S]],
) -> tuple[S, int]:
    """Fold ``events`` into ``state``, the first numbered ``expected``; return the state and
    the number the next event must carry. One out of sequence is a gap."""
    for event in events:
        if event.sequence_nr != expected:
            raise _gap(persistence_id, expected, event.sequence_nr, snapshot_seq)
        try:
            state = await apply(state, event)
        except BaseException as exc:
            exc.add_note(
                f"while replaying {persistence_id!r} event #{event.sequence_nr} "
                f"({event.type} v{event.version})"
            )
            raise
        expected += 1
    return state, expected


def _restore(snapshot: Snapshot, restore: Callable[[Snapshot], S]) -> S:
    try:
        return restore(snapshot)
    except Exception as exc:
        raise JournalIntegrityError(
            f"snapshot of {snapshot.persistence_id!r} at sequence_nr {snapshot.sequence_nr} "
            f"could not be decoded: {type(exc).__name__}: {exc}"
        ) from exc


def _gap(
    persistence_id: str,
    expected: int,
    found: int | None,
    snapshot_seq: int | None,
    highest: int | None = None,
) -> JournalIntegrityError:
    base = (
        f"snapshot at sequence_nr {snapshot_seq}" if snapshot_seq is not None else "no snapshot"
    )
    if found is None:
        what = f"no event up to the highest sequence_nr {highest}"
    else:
        what = f"found #{found}"
    return JournalIntegrityError(
        f"journal of {persistence_id!r} is not contiguous: expected event #{expected} "
        f"({base}), {what}; events missing or deleted without a snapshot covering them"
    )

