"""``retry_on_conflict``: a write from outside the actor (another engine appending to the
same persistence id) makes the actor recover and decide the same command again, once.

Run on the in-memory engine (the outside writer appends through the same engine object) and
on PostgreSQL (the outside writer is a second ``PostgresEngine`` on the same schema).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest

from actors import (
    ActorCrashed,
    ActorSystem,
    ConflictPersists,
    PersistentActor,
    PersistentContext,
    query,
    spawn_actor,
    spawn_persistent,
)
from persistence import ConcurrencyConflict, Engine, InMemoryEngine, NewEvent, StoredEvent
from persistence.embedded import EmbeddedPostgres
from tests.conftest import EngineFactory

T = 5.0
PID = "account"


def outside(n: int) -> list[NewEvent]:
    return [NewEvent("added", {"n": n})]


class Account(PersistentActor[list[int]]):
    """``(n, expected_version)``: refuses (replies ``("stale", version)``) when an expected
    version is given and is not the current one, else persists ``n``; ``("two", a, b)``
    persists two events one after the other, calling ``between`` in the middle."""

    persistence_id = PID
    retry_on_conflict = True

    def __init__(self, between: Callable[[], Awaitable[None]] | None = None) -> None:
        self.between = between
        self.handled = 0

    def initial_state(self) -> list[int]:
        return []

    def on_event(self, state: list[int], event: Any) -> list[int]:
        return [*state, int(event["n"])]

    async def on_command(
        self, state: list[int], command: Any, ctx: PersistentContext[list[int]]
    ) -> None:
        self.handled += 1
        if command[0] == "two":
            await ctx.persist({"n": command[1]})
            if self.between is not None:
                await self.between()
            await ctx.persist({"n": command[2]})
        else:
            n, expected = command
            if expected is not None and expected != ctx.sequence_nr:
                ctx.reply(("stale", ctx.sequence_nr))
                return
            await ctx.persist({"n": n})
        ctx.reply(ctx.state)


class Writers:
    """The actor's engine and an outside writer on the same journal."""

    def __init__(self, engine: Engine, other: Engine) -> None:
        self.engine = engine
        self.other = other

    async def append_outside(self, n: int) -> None:
        highest = await self.other.highest_sequence_nr(PID)
        await self.other.append(PID, outside(n), highest)

    async def journal(self) -> list[int]:
        return [e.payload["n"] async for e in self.engine.replay(PID)]


@pytest.fixture(params=["memory", "postgres"])
async def writers(
    request: pytest.FixtureRequest, engine_factory: EngineFactory
) -> AsyncIterator[Writers]:
    if request.param == "memory":
        engine = InMemoryEngine()
        yield Writers(engine, engine)
        return
    url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if not url:
        embedded: EmbeddedPostgres = request.getfixturevalue("embedded_postgres")
        url = embedded.url
    engine = await engine_factory(url)
    yield Writers(engine, await engine_factory(url, schema=engine.config.schema))


async def test_an_outside_write_is_recovered_and_the_command_succeeds(writers: Writers) -> None:
    actor = Account()
    async with ActorSystem("a", engine=writers.engine) as system:
        ref = spawn_actor(system, actor)
        assert await query(ref, (1, None), T) == [1]
        await writers.append_outside(100)
        assert await query(ref, (2, None), T) == [1, 100, 2]
        assert (system.metrics.conflict_retries, system.metrics.faults) == (1, 0)
        assert actor.handled == 3  # the second command ran twice
    assert await writers.journal() == [1, 100, 2]


async def test_with_a_stale_expected_version_the_retry_refuses_it(writers: Writers) -> None:
    async with ActorSystem("a", engine=writers.engine) as system:
        ref = spawn_actor(system, Account())
        assert await query(ref, (1, 0), T) == [1]
        await writers.append_outside(100)
        # The stale memory said version 1: the first try passed the check and conflicted;
        # the retry decides on the journal's version 2 and refuses.
        assert await query(ref, (2, 1), T) == ("stale", 2)
        assert await query(ref, (3, 2), T) == [1, 100, 3]
        assert system.metrics.conflict_retries == 1
    assert await writers.journal() == [1, 100, 3]


async def test_a_command_that_already_wrote_is_not_re_run(writers: Writers) -> None:
    actor = Account(between=lambda: writers.append_outside(100))
    async with ActorSystem("a", engine=writers.engine) as system:
        ref = spawn_actor(system, actor)
        with pytest.raises(ActorCrashed) as info:
            await query(ref, ("two", 1, 2), T)
        assert isinstance(info.value.error, ConcurrencyConflict)
        assert system.metrics.conflict_retries == 0
        actor.between = None
        assert await query(ref, (3, None), T) == [1, 100, 3]  # reset, recovered
    assert await writers.journal() == [1, 100, 3]


async def test_without_retry_on_conflict_the_conflict_fails_the_command(writers: Writers) -> None:
    actor = Account()
    actor.retry_on_conflict = False
    async with ActorSystem("a", engine=writers.engine) as system:
        ref = spawn_actor(system, actor)
        assert await query(ref, (1, None), T) == [1]
        await writers.append_outside(100)
        with pytest.raises(ActorCrashed) as info:
            await query(ref, (2, None), T)
        assert isinstance(info.value.error, ConcurrencyConflict)
        assert await query(ref, (2, None), T) == [1, 100, 2]


class Contended(InMemoryEngine):
    """Another writer appends just before each of the next ``times`` appends of ``PID``."""

    def __init__(self, times: int) -> None:
        super().__init__()
        self.times = times

    async def append(
        self,
        persistence_id: str,
        events: Sequence[NewEvent],
        expected_sequence_nr: int,
        **kwargs: Any,
    ) -> list[StoredEvent]:
        if persistence_id == PID and self.times > 0:
            self.times -= 1
            await super().append(PID, outside(100), await self.highest_sequence_nr(PID))
        return await super().append(persistence_id, events, expected_sequence_nr, **kwargs)


async def test_a_second_conflict_in_a_row_fails_with_conflict_persists() -> None:
    engine = Contended(times=2)
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, Account())
        with pytest.raises(ActorCrashed) as info:
            await query(ref, (1, None), T)
        assert isinstance(info.value.error, ConflictPersists)
        assert "another writer appended again" in str(info.value.error)
        assert system.metrics.conflict_retries == 1
        assert await query(ref, (2, None), T) == [100, 100, 2]
    assert [e.payload["n"] async for e in engine.replay(PID)] == [100, 100, 2]


async def test_the_functional_api_retries_too() -> None:
    engine = Contended(times=1)

    async def handler(state: list[int], msg: Any, ctx: Any) -> list[int]:
        if not ctx.recovering:
            await ctx.persist(msg)
            ctx.reply([*state, msg["n"]])
        return [*state, msg["n"]]

    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_persistent(
            system, handler, PID, initial_state=[], retry_on_conflict=True
        )
        assert await query(ref, {"n": 1}, T) == [100, 1]
