"""The persist path's bookkeeping, unit by unit (mutants of ``actors/journal.py`` the actor
tests let through; ``make mutation MODULES=journal``).

The sequence number moves only with a confirmed, contiguous append; an append the engine
numbered wrongly, in either direction, is refused and leaves the journal uncertain; a second
write while one is in flight is refused; the write's duration is measured on the clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator, Sequence

import pytest

import actors.journal
from actors.errors import PersistInProgress
from actors.journal import Journal
from persistence import InMemoryEngine, NewEvent
from persistence.engine import StoredEvent
from persistence.errors import JournalIntegrityError
from persistence.leases import Lease


class Renumbering(InMemoryEngine):
    """Stores events as asked, then reports them shifted by ``shift`` (a broken engine)."""

    def __init__(self, shift: int) -> None:
        super().__init__()
        self.shift = shift

    async def append(
        self,
        persistence_id: str,
        events: Sequence[NewEvent],
        expected_sequence_nr: int,
        *,
        fence: Lease | None = None,
    ) -> list[StoredEvent]:
        stored = await super().append(persistence_id, events, expected_sequence_nr, fence=fence)
        return [dataclasses.replace(e, sequence_nr=e.sequence_nr + self.shift) for e in stored]


class Held(InMemoryEngine):
    """An engine whose appends wait until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def append(
        self,
        persistence_id: str,
        events: Sequence[NewEvent],
        expected_sequence_nr: int,
        *,
        fence: Lease | None = None,
    ) -> list[StoredEvent]:
        self.entered.set()
        await self.release.wait()
        return await super().append(persistence_id, events, expected_sequence_nr, fence=fence)


def events(n: int) -> list[NewEvent]:
    return [NewEvent("added", {"n": i}) for i in range(n)]


async def test_a_confirmed_write_advances_the_sequence_nr_and_leaves_the_journal_certain() -> None:
    journal = Journal(InMemoryEngine(), "p")
    stored = await journal.write(events(2))
    assert [e.sequence_nr for e in stored] == [1, 2]
    assert journal.sequence_nr == 2
    assert journal.uncertain is False


@pytest.mark.parametrize("shift", [1, -1], ids=["numbered-too-high", "numbered-too-low"])
async def test_an_append_numbered_out_of_order_is_refused_and_leaves_the_journal_uncertain(
    shift: int,
) -> None:
    journal = Journal(Renumbering(shift), "p")
    with pytest.raises(JournalIntegrityError, match="expected \\[1, 2\\]"):
        await journal.write(events(2))
    assert journal.uncertain is True
    assert journal.sequence_nr == 0


async def test_a_second_write_while_one_is_in_flight_is_refused() -> None:
    engine = Held()
    journal = Journal(engine, "p")
    first = asyncio.create_task(journal.write(events(1)))
    await asyncio.wait_for(engine.entered.wait(), 5.0)
    with pytest.raises(PersistInProgress):
        await journal.write(events(1))
    engine.release.set()
    assert [e.sequence_nr for e in await first] == [1]
    assert journal.sequence_nr == 1
    assert [e.sequence_nr for e in await journal.write(events(1))] == [2]


async def test_the_write_duration_is_the_clock_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    readings: Iterator[float] = iter([2.0, 5.0])
    monkeypatch.setattr(actors.journal.time, "perf_counter", lambda: next(readings))
    journal = Journal(InMemoryEngine(), "p")
    await journal.write(events(1))
    assert journal.last_write_seconds == 3.0
