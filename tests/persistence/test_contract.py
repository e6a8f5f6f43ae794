"""The engine contract, once, for every engine (see ``conftest.engine``).

Journal and snapshot cases follow the Akka Persistence TCK; the rest are the traps listed in
``persistence-lessons.md``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from persistence import (
    ConcurrencyConflict,
    Engine,
    NewEvent,
    SerializationError,
    StateRevisionConflict,
    StoredEvent,
)

PID = "user-1"


async def collect(events: AsyncIterator[StoredEvent]) -> list[StoredEvent]:
    return [event async for event in events]


async def seqs(events: AsyncIterator[StoredEvent]) -> list[int]:
    return [event.sequence_nr async for event in events]


async def write(engine: Engine, pid: str, count: int, start: int = 0) -> list[StoredEvent]:
    events = [NewEvent("Noted", {"n": start + i}) for i in range(1, count + 1)]
    return await engine.append(pid, events, start)


@pytest.fixture
async def five(engine: Engine) -> Engine:
    """The TCK's journal: events 1..5 for ``PID``, written one per append."""
    for n in range(5):
        await engine.append(PID, [NewEvent("Noted", {"n": n + 1})], n)
    return engine


# -- journal: the TCK cases ------------------------------------------------------------------


async def test_replay_all_events(five: Engine) -> None:
    events = await collect(five.replay(PID))
    assert [e.sequence_nr for e in events] == [1, 2, 3, 4, 5]
    assert [e.payload for e in events] == [{"n": n} for n in range(1, 6)]
    assert all(e.persistence_id == PID and e.type == "Noted" for e in events)
    assert all(e.writer_id == five.writer_id for e in events)


async def test_replay_from_a_lower_bound(five: Engine) -> None:
    assert await seqs(five.replay(PID, 3)) == [3, 4, 5]


async def test_replay_to_an_upper_bound(five: Engine) -> None:
    assert await seqs(five.replay(PID, 1, 3)) == [1, 2, 3]


async def test_replay_with_a_count_limit(five: Engine) -> None:
    assert await seqs(five.replay(PID, max_count=3)) == [1, 2, 3]


async def test_replay_within_both_bounds(five: Engine) -> None:
    assert await seqs(five.replay(PID, 2, 4)) == [2, 3, 4]


async def test_replay_within_bounds_and_a_limit(five: Engine) -> None:
    assert await seqs(five.replay(PID, 2, 5, max_count=2)) == [2, 3]


async def test_replay_with_lower_equal_to_upper(five: Engine) -> None:
    assert await seqs(five.replay(PID, 3, 3)) == [3]


async def test_replay_with_limit_one(five: Engine) -> None:
    assert await seqs(five.replay(PID, 2, 4, max_count=1)) == [2]


async def test_limit_zero_gives_nothing_but_the_highest(five: Engine) -> None:
    assert await seqs(five.replay(PID, max_count=0)) == []
    assert await five.highest_sequence_nr(PID) == 5


async def test_lower_above_upper_gives_nothing(five: Engine) -> None:
    assert await seqs(five.replay(PID, 4, 3)) == []
    assert await seqs(five.replay(PID, 6)) == []


async def test_an_unknown_id_has_highest_zero(engine: Engine) -> None:
    assert await engine.highest_sequence_nr("nobody") == 0
    assert await seqs(engine.replay("nobody")) == []


async def test_after_deleting_up_to_three_replay_gives_four_and_five(five: Engine) -> None:
    await five.delete_events_to(PID, 3)
    assert await seqs(five.replay(PID)) == [4, 5]
    assert await seqs(five.replay(PID, 1, 4)) == [4]


async def test_highest_survives_deletes_and_the_next_append_continues(five: Engine) -> None:
    await five.delete_events_to(PID, 3)
    assert await five.highest_sequence_nr(PID) == 5
    await five.delete_events_to(PID, 5)
    assert await seqs(five.replay(PID)) == []
    assert await five.highest_sequence_nr(PID) == 5
    await five.delete_events_to(PID, 1_000)
    assert await five.highest_sequence_nr(PID) == 5
    with pytest.raises(ConcurrencyConflict) as info:
        await five.append(PID, [NewEvent("Noted", {"n": 1})], 0)
    assert info.value.actual_sequence_nr == 5
    stored = await five.append(PID, [NewEvent("Noted", {"n": 6})], 5)
    assert [e.sequence_nr for e in stored] == [6]
    assert await seqs(five.replay(PID)) == [6]
    assert PID in await five.persistence_ids()


async def test_replay_streams_across_pages(engine: Engine) -> None:
    await write(engine, PID, 2_500)  # more than one replay page of the PostgreSQL engine
    assert await seqs(engine.replay(PID)) == list(range(1, 2_501))
    assert await seqs(engine.replay(PID, 100, 2_300, max_count=2_150)) == list(range(100, 2_250))


# -- journal: beyond the TCK -----------------------------------------------------------------


async def test_append_returns_events_as_stored(engine: Engine) -> None:
    stored = await write(engine, PID, 3)
    assert [e.sequence_nr for e in stored] == [1, 2, 3]
    assert stored == await collect(engine.replay(PID))
    orderings = [e.ordering for e in stored]
    assert orderings == sorted(orderings) and len(set(orderings)) == 3


async def test_a_stale_append_conflicts_and_writes_nothing(engine: Engine) -> None:
    await write(engine, PID, 2)
    with pytest.raises(ConcurrencyConflict) as info:
        await engine.append(PID, [NewEvent("Late", {})], 1)
    assert (info.value.expected_sequence_nr, info.value.actual_sequence_nr) == (1, 2)
    with pytest.raises(ConcurrencyConflict):
        await engine.append(PID, [NewEvent("Ahead", {})], 5)
    assert [e.type async for e in engine.replay(PID)] == ["Noted", "Noted"]


async def test_concurrent_appends_at_the_same_sequence_nr_leave_one_winner(
    engine: Engine,
) -> None:
    await write(engine, PID, 1)
    attempts = [
        engine.append(PID, [NewEvent("Try", {"writer": i}), NewEvent("Try2", {"writer": i})], 1)
        for i in range(10)
    ]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    winners = [r for r in results if isinstance(r, list)]
    losers = [r for r in results if isinstance(r, ConcurrencyConflict)]
    assert len(winners) == 1 and len(losers) == 9
    assert all(c.actual_sequence_nr == 3 for c in losers)
    events = await collect(engine.replay(PID))
    assert [e.sequence_nr for e in events] == [1, 2, 3]
    assert events[1:] == winners[0]
    assert events[1].payload == events[2].payload


async def test_one_conflict_never_fails_other_ids(engine: Engine) -> None:
    await write(engine, "a", 1)
    results = await asyncio.gather(
        engine.append("a", [NewEvent("Stale", {})], 0),
        *(engine.append(f"other-{i}", [NewEvent("Fine", {"i": i})], 0) for i in range(20)),
        return_exceptions=True,
    )
    assert isinstance(results[0], ConcurrencyConflict)
    assert all(isinstance(r, list) and len(r) == 1 for r in results[1:])
    for i in range(20):
        assert await engine.highest_sequence_nr(f"other-{i}") == 1


async def test_an_empty_append_is_a_no_op(engine: Engine) -> None:
    assert await engine.append(PID, [], 0) == []
    assert await engine.append(PID, [], 42) == []  # not even checked
    assert await engine.highest_sequence_nr(PID) == 0
    assert await engine.persistence_ids() == []


async def test_per_event_tags_round_trip_in_a_multi_event_append(engine: Engine) -> None:
    stored = await engine.append(
        PID,
        [
            NewEvent("A", {"i": 1}, tags=frozenset({"red"})),
            NewEvent("B", {"i": 2}, tags=frozenset({"blue", "green"})),
            NewEvent("C", {"i": 3}),
        ],
        0,
    )
    expected = [frozenset({"red"}), frozenset({"blue", "green"}), frozenset()]
    assert [e.tags for e in stored] == expected
    assert [e.tags async for e in engine.replay(PID)] == expected
    assert [e.payload["i"] async for e in engine.events_by_tag("red")] == [1]
    assert [e.payload["i"] async for e in engine.events_by_tag("green")] == [2]
    assert await collect(engine.events_by_tag("purple")) == []


async def test_events_by_tag_come_in_ordering_order_across_ids(engine: Engine) -> None:
    tagged = frozenset({"contact"})
    for round_ in range(3):
        for pid in ("x", "y", "z"):
            await engine.append(pid, [NewEvent("E", {"r": round_, "p": pid}, tags=tagged)], round_)
    events = await collect(engine.events_by_tag("contact"))
    assert [(e.payload["r"], e.persistence_id) for e in events] == [
        (r, p) for r in range(3) for p in ("x", "y", "z")
    ]
    orderings = [e.ordering for e in events]
    assert orderings == sorted(orderings)
    page = await collect(engine.events_by_tag("contact", after_ordering=orderings[3], max_count=2))
    assert [e.ordering for e in page] == orderings[4:6]
    assert await collect(engine.events_by_tag("contact", max_count=0)) == []
    assert await collect(engine.events_by_tag("contact", after_ordering=orderings[-1])) == []


async def test_deleted_events_vanish_from_by_tag_queries(engine: Engine) -> None:
    tags = frozenset({"t"})
    await engine.append(PID, [NewEvent("E", {"i": i}, tags=tags) for i in range(1, 5)], 0)
    await engine.append("keep", [NewEvent("E", {"i": 99}, tags=tags)], 0)
    await engine.delete_events_to(PID, 2)
    assert [(e.persistence_id, e.payload["i"]) async for e in engine.events_by_tag("t")] == [
        (PID, 3),
        (PID, 4),
        ("keep", 99),
    ]


async def test_a_non_serialisable_payload_is_rejected_and_nothing_written(
    engine: Engine,
) -> None:
    with pytest.raises(SerializationError, match=r"event #2 \(Bad\)") as info:
        await engine.append(PID, [NewEvent("Good", {"ok": 1}), NewEvent("Bad", {"x": {1, 2}})], 0)
    assert PID in str(info.value)
    with pytest.raises(SerializationError):
        await engine.append(PID, [NewEvent("NaN", {"x": float("nan")})], 0)
    assert await engine.highest_sequence_nr(PID) == 0
    assert await collect(engine.replay(PID)) == []
    with pytest.raises(SerializationError, match="snapshot"):
        await engine.save_snapshot(PID, 1, object())
    assert await engine.load_snapshot(PID) is None
    with pytest.raises(SerializationError, match="state"):
        await engine.upsert_state("k", {"when": object()}, 0)
    assert await engine.get_state("k") is None


@pytest.mark.parametrize(
    ("payload", "reason"),
    [({"text": "a\x00b"}, r"U\+0000"), ({"text": "\ud800"}, "surrogate")],
    ids=["nul", "lone-surrogate"],
)
async def test_text_postgresql_cannot_store_is_rejected_by_every_engine(
    engine: Engine, payload: dict[str, str], reason: str
) -> None:
    with pytest.raises(SerializationError, match=reason):
        await engine.append(PID, [NewEvent("E", payload)], 0)
    with pytest.raises(ValueError, match="NUL"):
        await engine.append("bad\x00id", [NewEvent("E", {})], 0)
    assert await engine.highest_sequence_nr(PID) == 0
    assert (
        await engine.append(PID, [NewEvent("E", {"text": "a\\u0000b"})], 0)
    )[0].payload == {"text": "a\\u0000b"}


async def test_payloads_are_copies(engine: Engine) -> None:
    payload = {"items": [1, 2]}
    stored = await engine.append(PID, [NewEvent("E", payload)], 0)
    payload["items"].append(3)
    stored[0].payload["items"].append(4)
    assert [e.payload async for e in engine.replay(PID)] == [{"items": [1, 2]}]


async def test_unicode_and_nested_payloads_round_trip(engine: Engine) -> None:
    payload = {"name": "Zoë 日本 \\u0000 literal", "n": [1, 2.5, None, True, {"deep": "x"}]}
    await engine.append(PID, [NewEvent("E", payload, version=3)], 0)
    [event] = await collect(engine.replay(PID))
    assert event.payload == payload and event.version == 3


async def test_persistence_ids_lists_every_id_ever_appended(engine: Engine) -> None:
    await write(engine, "b", 1)
    await write(engine, "a", 2)
    await engine.delete_events_to("a", 2)
    assert await engine.persistence_ids() == ["a", "b"]


# -- snapshots: the TCK cases ----------------------------------------------------------------


@pytest.fixture
async def snapshots(engine: Engine) -> Engine:
    for seq in (10, 20, 30):
        await engine.save_snapshot(PID, seq, {"at": seq})
    return engine


async def test_load_the_latest_snapshot(snapshots: Engine) -> None:
    snapshot = await snapshots.load_snapshot(PID)
    assert snapshot is not None
    assert (snapshot.persistence_id, snapshot.sequence_nr, snapshot.payload) == (
        PID,
        30,
        {"at": 30},
    )
    assert await snapshots.load_snapshot("nobody") is None


async def test_load_the_latest_snapshot_at_or_below_a_bound(snapshots: Engine) -> None:
    at_20 = await snapshots.load_snapshot(PID, 20)
    below_25 = await snapshots.load_snapshot(PID, 25)
    assert at_20 is not None and at_20.sequence_nr == 20
    assert below_25 is not None and below_25.sequence_nr == 20
    assert await snapshots.load_snapshot(PID, 9) is None


async def test_delete_one_snapshot(snapshots: Engine) -> None:
    await snapshots.delete_snapshots(PID, 30, 30)
    latest = await snapshots.load_snapshot(PID)
    assert latest is not None and latest.sequence_nr == 20


async def test_delete_a_range_of_snapshots(snapshots: Engine) -> None:
    await snapshots.delete_snapshots(PID, 0, 20)
    latest = await snapshots.load_snapshot(PID)
    assert latest is not None and latest.sequence_nr == 30
    assert await snapshots.load_snapshot(PID, 29) is None
    await snapshots.delete_snapshots(PID)
    assert await snapshots.load_snapshot(PID) is None


async def test_saving_at_the_same_sequence_nr_overwrites(snapshots: Engine) -> None:
    await snapshots.save_snapshot(PID, 30, {"at": 30, "again": True})
    latest = await snapshots.load_snapshot(PID)
    assert latest is not None and latest.payload == {"at": 30, "again": True}


async def test_a_large_snapshot(engine: Engine) -> None:
    payload = {
        "contacts": [
            {"id": i, "name": f"name {i}", "email": f"u{i}@example.com"} for i in range(50_000)
        ],
        "blob": "x" * 2_000_000,
    }
    await engine.save_snapshot(PID, 7, payload)
    snapshot = await engine.load_snapshot(PID)
    assert snapshot is not None and snapshot.payload == payload


async def test_snapshots_of_other_ids_are_separate(snapshots: Engine) -> None:
    await snapshots.save_snapshot("other", 99, {"other": True})
    latest = await snapshots.load_snapshot(PID)
    assert latest is not None and latest.sequence_nr == 30


# -- durable state ---------------------------------------------------------------------------


async def test_state_revisions_count_and_stale_writes_conflict(engine: Engine) -> None:
    first = await engine.upsert_state("k", {"v": 1}, 0)
    assert (first.revision, first.value, first.expires_at) == (1, {"v": 1}, None)
    second = await engine.upsert_state("k", {"v": 2}, 1)
    assert second.revision == 2
    with pytest.raises(StateRevisionConflict) as info:
        await engine.upsert_state("k", {"v": "stale"}, 1)
    assert (info.value.expected_revision, info.value.actual_revision) == (1, 2)
    with pytest.raises(StateRevisionConflict):
        await engine.upsert_state("k", {"v": "as new"}, 0)
    current = await engine.get_state("k")
    assert current is not None and (current.revision, current.value) == (2, {"v": 2})


async def test_concurrent_state_writes_leave_one_winner(engine: Engine) -> None:
    results = await asyncio.gather(
        *(engine.upsert_state("k", {"w": i}, 0) for i in range(8)), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    failures = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, StateRevisionConflict) for r in failures)


async def test_ttl_expired_state_reads_as_absent(engine: Engine) -> None:
    """No timed assert: a long TTL is alive, a short one is waited out (bounded) by polling."""
    alive = await engine.upsert_state("k", {"v": 1}, 0, ttl=3600)
    assert alive.expires_at is not None
    assert 3600 <= (alive.expires_at - alive.updated_at).total_seconds() < 3660
    current = await engine.get_state("k")
    assert current is not None and (current.revision, current.value) == (1, {"v": 1})
    assert current.expires_at == alive.expires_at

    written = await engine.upsert_state("k", {"v": 2}, 1, ttl=0.01)
    assert written.expires_at is not None
    for _ in range(3_000):
        if await engine.get_state("k") is None:
            break
        await asyncio.sleep(0.01)
    assert await engine.get_state("k") is None
    with pytest.raises(StateRevisionConflict) as info:
        await engine.upsert_state("k", {"v": 3}, 2)
    assert info.value.actual_revision == 0
    again = await engine.upsert_state("k", {"v": 3}, 0)
    assert again.revision == 3  # revisions are never reused
    assert again.expires_at is None
    with pytest.raises(ValueError, match="ttl"):
        await engine.upsert_state("k", {"v": 4}, 3, ttl=0)


async def test_delete_state(engine: Engine) -> None:
    await engine.upsert_state("k", {"v": 1}, 0)
    with pytest.raises(StateRevisionConflict):
        await engine.delete_state("k", expected_revision=2)
    assert await engine.delete_state("k", expected_revision=1) is True
    assert await engine.get_state("k") is None
    assert await engine.delete_state("k") is False
    assert await engine.delete_state("never") is False
    recreated = await engine.upsert_state("k", {"v": 2}, 0)
    assert recreated.revision == 2
