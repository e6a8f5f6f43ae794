"""The recovery path's checks that the other tests let through (mutants of
``actors/recovery.py``; ``make mutation MODULES=recovery``).

An event numbered *below* the one expected (a repeat) breaks contiguity as surely as a gap
does; the replay stream is closed even when recovery stops early; a gap's message says which
snapshot recovery started from; the page size is validated at its boundary; the report's
duration is the clock difference; the report cannot be altered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator

import pytest

import actors.recovery
from actors.recovery import recover
from persistence import InMemoryEngine, NewEvent
from persistence.engine import MAX_SEQUENCE_NR, Engine, Snapshot, StoredEvent
from persistence.errors import JournalIntegrityError


async def _sum(state: int, event: StoredEvent) -> int:
    return state + int(event.payload["n"])


def _restore(snapshot: Snapshot) -> int:
    return int(snapshot.payload["total"])


class Repeating(InMemoryEngine):
    """Replays every event of its journal, then the last one again (a broken engine)."""

    recovery_start = Engine.recovery_start  # the first page through replay too

    def replay(
        self,
        persistence_id: str,
        from_sequence_nr: int = 1,
        to_sequence_nr: int = MAX_SEQUENCE_NR,
        max_count: int | None = None,
    ) -> AsyncIterator[StoredEvent]:
        inner = super().replay(persistence_id, from_sequence_nr, to_sequence_nr, max_count)

        async def repeated() -> AsyncIterator[StoredEvent]:
            last = None
            async for event in inner:
                last = event
                yield event
            if last is not None:
                yield last

        return repeated()


class Stream:
    """A replay stream that records whether it was closed."""

    def __init__(self, events: list[StoredEvent]) -> None:
        self.events = iter(events)
        self.closed = False

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> StoredEvent:
        if self.closed:
            raise StopAsyncIteration
        try:
            return next(self.events)
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self.closed = True


class Gapped(InMemoryEngine):
    """Replays its journal without event #2, through a :class:`Stream` it keeps."""

    recovery_start = Engine.recovery_start  # the first page through replay too

    def __init__(self) -> None:
        super().__init__()
        self.streams: list[Stream] = []

    def replay(
        self,
        persistence_id: str,
        from_sequence_nr: int = 1,
        to_sequence_nr: int = MAX_SEQUENCE_NR,
        max_count: int | None = None,
    ) -> AsyncIterator[StoredEvent]:
        rows = self._journals.get(persistence_id, [])
        events = [r.event() for r in rows if from_sequence_nr <= r.sequence_nr != 2]
        stream = Stream(events[:max_count])
        self.streams.append(stream)
        return stream


async def _filled(engine: InMemoryEngine, n: int) -> InMemoryEngine:
    await engine.append("p", [NewEvent("Added", {"n": i}) for i in range(1, n + 1)], 0)
    return engine


async def test_recovery_closes_the_replay_stream_it_stopped_reading() -> None:
    engine = await _filled(Gapped(), 4)
    with pytest.raises(JournalIntegrityError):
        await recover(engine, "p", initial=lambda: 0, restore=_restore, apply=_sum)
    assert [stream.closed for stream in engine.streams] == [True]


async def test_a_gap_names_the_snapshot_recovery_started_from_or_its_absence() -> None:
    engine = await _filled(Gapped(), 4)
    with pytest.raises(JournalIntegrityError, match=r"expected event #2 \(no snapshot\)"):
        await recover(engine, "p", initial=lambda: 0, restore=_restore, apply=_sum)
    await engine.save_snapshot("p", 1, {"total": 1})
    with pytest.raises(JournalIntegrityError, match=r"#2 \(snapshot at sequence_nr 1\)"):
        await recover(engine, "p", initial=lambda: 0, restore=_restore, apply=_sum)


async def test_a_page_of_one_event_is_allowed_and_a_smaller_one_refused() -> None:
    engine = await _filled(InMemoryEngine(), 3)
    state, report = await recover(
        engine, "p", initial=lambda: 0, restore=_restore, apply=_sum, page_size=1
    )
    assert (state, report.events_replayed) == (6, 3)
    for page_size in (0, -1):
        with pytest.raises(ValueError, match="page_size must be >= 1"):
            await recover(
                engine, "p", initial=lambda: 0, restore=_restore, apply=_sum, page_size=page_size
            )


async def test_an_event_repeated_in_the_replay_fails_recovery() -> None:
    engine = Repeating()
    await engine.append("p", [NewEvent("Added", {"n": n}) for n in (1, 2)], 0)
    with pytest.raises(JournalIntegrityError, match=r"expected event #3 .*found #2"):
        await recover(engine, "p", initial=lambda: 0, restore=_restore, apply=_sum, page_size=3)


async def test_the_report_times_the_recovery_on_the_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readings: Iterator[float] = iter([2.0, 5.0])
    monkeypatch.setattr(actors.recovery.time, "perf_counter", lambda: next(readings))
    _, report = await recover(
        InMemoryEngine(), "p", initial=lambda: 0, restore=_restore, apply=_sum
    )
    assert report.seconds == 3.0


async def test_the_report_is_immutable() -> None:
    _, report = await recover(
        InMemoryEngine(), "p", initial=lambda: 0, restore=_restore, apply=_sum
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.sequence_nr = 9  # type: ignore[misc]
