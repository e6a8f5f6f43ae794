"""The recovery path on its own: snapshot choice, the replay start, contiguity, paging."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from actors.recovery import recover
from persistence import InMemoryEngine, NewEvent
from persistence.engine import MAX_SEQUENCE_NR, Engine, Snapshot, StoredEvent
from persistence.errors import JournalIntegrityError


async def _sum(state: int, event: StoredEvent) -> int:
    return state + int(event.payload["n"])


def _restore(snapshot: Snapshot) -> int:
    return int(snapshot.payload["total"])


async def _fill(engine: InMemoryEngine, pid: str, values: Sequence[int]) -> None:
    start = await engine.highest_sequence_nr(pid)
    await engine.append(pid, [NewEvent("Added", {"n": n}) for n in values], start)


class CountingEngine(InMemoryEngine):
    """Records every replay call, to see where replay starts and how it pages (its first
    page too: it starts recoveries with the contract's default, built on replay)."""

    recovery_start = Engine.recovery_start

    def __init__(self) -> None:
        super().__init__()
        self.replays: list[tuple[int, int, int | None]] = []

    def replay(
        self,
        persistence_id: str,
        from_sequence_nr: int = 1,
        to_sequence_nr: int = MAX_SEQUENCE_NR,
        max_count: int | None = None,
    ) -> AsyncIterator[StoredEvent]:
        self.replays.append((from_sequence_nr, to_sequence_nr, max_count))
        return super().replay(persistence_id, from_sequence_nr, to_sequence_nr, max_count)


async def test_full_replay_without_snapshot() -> None:
    engine = InMemoryEngine()
    await _fill(engine, "p", [1, 2, 3, 4])
    state, report = await recover(engine, "p", initial=lambda: 0, restore=_restore, apply=_sum)
    assert state == 10
    assert (report.events_replayed, report.snapshot_sequence_nr, report.sequence_nr) == (4, None, 4)


async def test_empty_journal_gives_initial_state() -> None:
    state, report = await recover(
        InMemoryEngine(), "none", initial=lambda: 7, restore=_restore, apply=_sum
    )
    assert state == 7
    assert (report.events_replayed, report.sequence_nr) == (0, 0)


async def test_replay_starts_right_after_the_snapshot() -> None:
    engine = CountingEngine()
    await _fill(engine, "p", [1, 2, 3, 4, 5])
    await engine.save_snapshot("p", 3, {"total": 6})
    seen: list[int] = []

    async def apply(state: int, event: StoredEvent) -> int:
        seen.append(event.sequence_nr)
        return await _sum(state, event)

    state, report = await recover(engine, "p", initial=lambda: 0, restore=_restore, apply=apply)
    assert seen == [4, 5]  # not 3 (applied twice) and not 5 only (one lost)
    assert state == 15 == sum([1, 2, 3, 4, 5])
    assert engine.replays[0][0] == 4
    assert (report.snapshot_sequence_nr, report.events_replayed) == (3, 2)


async def test_snapshot_at_the_end_replays_nothing() -> None:
    engine = InMemoryEngine()
    await _fill(engine, "p", [1, 2])
    await engine.save_snapshot("p", 2, {"total": 3})
    state, report = await recover(engine, "p", initial=lambda: 0, restore=_restore, apply=_sum)
    assert (state, report.events_replayed, report.sequence_nr) == (3, 0, 2)


async def test_snapshot_beyond_the_journal_is_ignored() -> None:
    engine = InMemoryEngine()
    await _fill(engine, "p", [1, 2, 3])
    await engine.save_snapshot("p", 2, {"total": 3})
    await engine.save_snapshot("p", 9, {"total": 1000})
    state, report = await recover(engine, "p", initial=lambda: 0, restore=_restore, apply=_sum)
    assert state == 6
    assert report.snapshot_sequence_nr == 2


async def test_replay_streams_in_pages() -> None:
    engine = CountingEngine()
    await _fill(engine, "p", list(range(1, 26)))
    state, report = await recover(
        engine, "p", initial=lambda: 0, restore=_restore, apply=_sum, page_size=10
    )
    assert state == sum(range(1, 26))
    assert engine.replays == [(1, 25, 10), (11, 25, 10), (21, 25, 10)]
    assert report.events_replayed == 25


async def test_deleted_events_without_snapshot_fail_loudly() -> None:
    engine = InMemoryEngine()
    await _fill(engine, "p", [1, 2, 3, 4])
    await engine.delete_events_to("p", 2)
    with pytest.raises(JournalIntegrityError, match=r"expected event #1 .*found #3"):
        await recover(engine, "p", initial=lambda: 0, restore=_restore, apply=_sum)


async def test_deleted_events_covered_by_a_snapshot_recover() -> None:
    engine = InMemoryEngine()
    await _fill(engine, "p", [1, 2, 3, 4])
    await engine.save_snapshot("p", 2, {"total": 3})
    await engine.delete_events_to("p", 2)
    state, _ = await recover(engine, "p", initial=lambda: 0, restore=_restore, apply=_sum)
    assert state == 10


async def test_all_events_deleted_and_no_snapshot_fail_loudly() -> None:
    engine = InMemoryEngine()
    await _fill(engine, "p", [1, 2, 3])
    await engine.delete_events_to("p", 3)
    with pytest.raises(JournalIntegrityError, match="highest sequence_nr 3"):
        await recover(engine, "p", initial=lambda: 0, restore=_restore, apply=_sum)


class HolyEngine(InMemoryEngine):
    """Loses one event on replay, as a corrupted journal would (in a recovery's first page
    too: it starts recoveries with the contract's default, built on replay)."""

    recovery_start = Engine.recovery_start

    def __init__(self, missing: int) -> None:
        super().__init__()
        self.missing = missing

    async def _skip(self, events: AsyncIterator[StoredEvent]) -> AsyncIterator[StoredEvent]:
        async for event in events:
            if event.sequence_nr != self.missing:
                yield event

    def replay(
        self,
        persistence_id: str,
        from_sequence_nr: int = 1,
        to_sequence_nr: int = MAX_SEQUENCE_NR,
        max_count: int | None = None,
    ) -> AsyncIterator[StoredEvent]:
        return self._skip(
            super().replay(persistence_id, from_sequence_nr, to_sequence_nr, max_count)
        )


@pytest.mark.parametrize("missing", [1, 3, 5])
async def test_a_gap_anywhere_fails_loudly(missing: int) -> None:
    engine = HolyEngine(missing)
    await _fill(engine, "p", [1, 2, 3, 4, 5])
    with pytest.raises(JournalIntegrityError, match=f"expected event #{missing}"):
        await recover(engine, "p", initial=lambda: 0, restore=_restore, apply=_sum, page_size=2)


async def test_undecodable_snapshot_fails_recovery() -> None:
    engine = InMemoryEngine()
    await _fill(engine, "p", [1, 2, 3])
    await engine.save_snapshot("p", 2, {"wrong": "shape"})
    await engine.delete_events_to("p", 2)
    with pytest.raises(JournalIntegrityError, match="snapshot of 'p' at sequence_nr 2"):
        await recover(engine, "p", initial=lambda: 0, restore=_restore, apply=_sum)


async def test_a_fault_while_folding_propagates_with_a_note() -> None:
    engine = InMemoryEngine()
    await _fill(engine, "p", [1, 2, 3, 4])
    applied: list[int] = []

    async def apply(state: int, event: StoredEvent) -> int:
        if event.sequence_nr == 3:
            raise ZeroDivisionError("boom")
        applied.append(event.sequence_nr)
        return state

    with pytest.raises(ZeroDivisionError) as info:
        await recover(engine, "p", initial=lambda: 0, restore=_restore, apply=apply)
    assert applied == [1, 2]
    assert any("event #3" in note for note in info.value.__notes__)
