"""A first check of the in-memory engine; the full contract suite runs it against every engine."""

import pytest

from persistence import ConcurrencyConflict, InMemoryEngine, NewEvent


async def test_append_replay_and_conflict() -> None:
    engine = InMemoryEngine()
    stored = await engine.append("p", [NewEvent("A", {"n": 1}), NewEvent("B", {"n": 2})], 0)
    assert [e.sequence_nr for e in stored] == [1, 2]
    assert [e.payload["n"] async for e in engine.replay("p")] == [1, 2]
    with pytest.raises(ConcurrencyConflict) as info:
        await engine.append("p", [NewEvent("C", {})], 1)
    assert info.value.actual_sequence_nr == 2
