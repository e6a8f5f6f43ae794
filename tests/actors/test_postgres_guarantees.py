"""Two guarantees of the persist and recovery paths, against the real PostgreSQL journal.

The in-memory versions live in ``test_persistent_actor.py`` (a failed write leaves state and
sequence_nr untouched) and ``test_recovery_path.py`` (a gap fails recovery loudly). Here the
failure is PostgreSQL's own: a trigger that refuses the insert, a backend terminated in the
middle of the write, a row DELETEd from the journal table behind the engine's back.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg import sql

from actors import ActorSystem, PersistentActor, PersistentContext, query, spawn_actor
from actors.recovery import recover
from persistence import NewEvent
from persistence.engine import Snapshot, StoredEvent
from persistence.errors import (
    AppendRefused,
    JournalIntegrityError,
    PersistenceError,
    StorageUnavailable,
)
from persistence.postgres import PostgresEngine
from tests.conftest import EngineFactory

T = 30.0  # query timeout: generous, these tests are never timed
PID = "ledger"


class Ledger(PersistentActor[list[int]]):
    """An int persists it; a tuple persists each item, catching a failed write and replying
    ``("failed", error, state, sequence_nr)``; ``"get"`` replies ``(state, sequence_nr)``."""

    persistence_id = PID

    def __init__(self, snapshot_every: int | None = None) -> None:
        self.snapshot_every = snapshot_every
        self.crashes: list[BaseException] = []

    def initial_state(self) -> list[int]:
        return []

    def on_event(self, state: list[int], event: Any) -> list[int]:
        return [*state, event["n"]]

    async def on_command(
        self, state: list[int], command: Any, ctx: PersistentContext[list[int]]
    ) -> None:
        if command == "get":
            ctx.reply((ctx.state, ctx.sequence_nr))
        elif isinstance(command, tuple):
            try:
                await ctx.persist_all({"n": n} for n in command)
            except PersistenceError as exc:
                ctx.reply(("failed", exc, ctx.state, ctx.sequence_nr))
                return
            ctx.reply(("ok", ctx.state, ctx.sequence_nr))
        else:
            await ctx.persist({"n": command})
            ctx.reply(ctx.state)

    def on_crash(
        self, msg: object, error: BaseException, ctx: PersistentContext[list[int]]
    ) -> None:
        self.crashes.append(error)


async def _admin(engine: PostgresEngine) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(engine.config.url, autocommit=True)


async def _journal_rows(engine: PostgresEngine) -> list[tuple[int, Any]]:
    async with await _admin(engine) as conn:
        cur = await conn.execute(
            sql.SQL("SELECT sequence_nr, payload FROM {} WHERE persistence_id = %s "
                    "ORDER BY sequence_nr").format(engine.names.journal),
            [PID],
        )
        return [(int(seq), payload) for seq, payload in await cur.fetchall()]


async def _install_trigger(engine: PostgresEngine, body: str) -> None:
    """A row trigger on the journal table running ``body`` (plpgsql) before each insert."""
    schema = engine.config.schema
    async with await _admin(engine) as conn:
        await conn.execute(sql.SQL(
            "CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            + body + " RETURN NEW; END $$"
        ).format(fn=sql.Identifier(schema, "journal_guard")))
        await conn.execute(sql.SQL(
            "CREATE TRIGGER journal_guard BEFORE INSERT ON {journal} "
            "FOR EACH ROW EXECUTE FUNCTION {fn}()"
        ).format(journal=engine.names.journal, fn=sql.Identifier(schema, "journal_guard")))


async def _drop_trigger(engine: PostgresEngine) -> None:
    async with await _admin(engine) as conn:
        await conn.execute(sql.SQL("DROP TRIGGER journal_guard ON {}").format(
            engine.names.journal))


# -- the sequence number advances only after the commit --------------------------------------


async def test_a_refused_write_leaves_sequence_nr_and_journal_where_they_were(
    pg_engine: PostgresEngine,
) -> None:
    async with ActorSystem("a", engine=pg_engine) as system:
        ref = spawn_actor(system, Ledger(), PID)
        assert await query(ref, 1, T) == [1]
        assert await query(ref, 2, T) == [1, 2]
        await _install_trigger(pg_engine, "RAISE EXCEPTION 'journal closed by the test';")
        failed = await query(ref, (3, 4), T)
        assert failed[0] == "failed" and isinstance(failed[1], AppendRefused), failed
        assert "journal closed by the test" in str(failed[1])
        assert failed[2:] == ([1, 2], 2)
        assert await pg_engine.highest_sequence_nr(PID) == 2
        assert [seq for seq, _ in await _journal_rows(pg_engine)] == [1, 2]

        await _drop_trigger(pg_engine)
        assert await query(ref, (3, 4), T) == ("ok", [1, 2, 3, 4], 4)
        assert await query(ref, "get", T) == ([1, 2, 3, 4], 4)
    assert await _journal_rows(pg_engine) == [(1, {"n": 1}), (2, {"n": 2}), (3, {"n": 3}),
                                              (4, {"n": 4})]


async def _sleeping_backend(conn: psycopg.AsyncConnection[Any], application_name: str) -> int:
    """The pid of the engine's backend that sleeps in the trigger (bounded wait)."""
    for _ in range(3_000):
        cur = await conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
            "AND wait_event = 'PgSleep'",
            [application_name],
        )
        row = await cur.fetchone()
        if row is not None:
            return int(row[0])
        await asyncio.sleep(0.01)
    raise AssertionError("the write never reached the trigger")


async def test_a_write_whose_backend_is_terminated_acknowledges_nothing(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(connect_timeout=10)
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, Ledger(), PID)
        assert await query(ref, 1, T) == [1]
        await _install_trigger(engine, "PERFORM pg_sleep(60);")
        pending = asyncio.ensure_future(query(ref, (2, 3), T))
        async with await _admin(engine) as admin:
            backend = await _sleeping_backend(admin, engine.application_name)
            assert not pending.done()  # the write is in the middle of its transaction
            await admin.execute("SELECT pg_terminate_backend(%s)", [backend])
        failed = await pending
        assert failed[0] == "failed" and isinstance(failed[1], StorageUnavailable), failed
        assert failed[2:] == ([1], 1)
        await _drop_trigger(engine)
        assert await engine.highest_sequence_nr(PID) == 1
        assert [seq for seq, _ in await _journal_rows(engine)] == [1]

        assert await query(ref, (2, 3), T) == ("ok", [1, 2, 3], 3)
    assert [seq for seq, _ in await _journal_rows(engine)] == [1, 2, 3]


# -- a gap in the journal fails recovery loudly ----------------------------------------------


async def _sum(state: int, event: StoredEvent) -> int:
    return state + int(event.payload["n"])


def _restore(snapshot: Snapshot) -> int:
    return int(snapshot.payload["total"])


async def _delete_row(engine: PostgresEngine, sequence_nr: int) -> None:
    async with await _admin(engine) as conn:
        cur = await conn.execute(
            sql.SQL("DELETE FROM {} WHERE persistence_id = %s AND sequence_nr = %s").format(
                engine.names.journal),
            [PID, sequence_nr],
        )
        assert cur.rowcount == 1


async def _five_events(engine: PostgresEngine) -> None:
    await engine.append(PID, [NewEvent("Added", {"n": n}) for n in range(1, 6)], 0)


@pytest.mark.parametrize("snapshot_at", [None, 2])
async def test_a_row_deleted_from_the_journal_table_fails_recovery(
    pg_engine: PostgresEngine, snapshot_at: int | None
) -> None:
    await _five_events(pg_engine)
    if snapshot_at is not None:
        await pg_engine.save_snapshot(PID, snapshot_at, {"total": 3})
    await _delete_row(pg_engine, 4)
    with pytest.raises(JournalIntegrityError, match=r"expected event #4 .*found #5"):
        await recover(pg_engine, PID, initial=lambda: 0, restore=_restore, apply=_sum,
                      page_size=2)


async def test_the_last_row_deleted_fails_recovery_against_the_highest_mark(
    pg_engine: PostgresEngine,
) -> None:
    await _five_events(pg_engine)
    await _delete_row(pg_engine, 5)
    with pytest.raises(JournalIntegrityError, match="highest sequence_nr 5"):
        await recover(pg_engine, PID, initial=lambda: 0, restore=_restore, apply=_sum)


async def test_the_same_journal_recovers_when_nothing_is_deleted(
    pg_engine: PostgresEngine,
) -> None:
    """The control of the two tests above: only the deleted row makes recovery fail."""
    await _five_events(pg_engine)
    await pg_engine.save_snapshot(PID, 2, {"total": 3})
    state, report = await recover(pg_engine, PID, initial=lambda: 0, restore=_restore,
                                  apply=_sum, page_size=2)
    assert (state, report.snapshot_sequence_nr, report.events_replayed) == (15, 2, 3)


@pytest.mark.parametrize("snapshot_every", [None, 2])
async def test_an_actor_over_a_journal_with_a_hole_does_not_start(
    pg_engine: PostgresEngine, snapshot_every: int | None
) -> None:
    async with ActorSystem("a", engine=pg_engine) as system:
        ref = spawn_actor(system, Ledger(snapshot_every), PID)
        for n in range(1, 6):
            await query(ref, n, T)
    snapshot = await pg_engine.load_snapshot(PID)
    assert (snapshot.sequence_nr if snapshot else None) == (4 if snapshot_every else None)
    await _delete_row(pg_engine, 5 if snapshot_every else 3)
    await pg_engine.append(PID, [NewEvent("message", {"n": 6})], 5)  # the hole is in the middle

    actor = Ledger(snapshot_every)
    async with ActorSystem("b", engine=pg_engine) as system:
        spawn_actor(system, actor, PID)
        for _ in range(3_000):
            if actor.crashes:
                break
            await asyncio.sleep(0.01)
    [error] = actor.crashes
    assert isinstance(error, JournalIntegrityError)
    assert f"expected event #{5 if snapshot_every else 3}" in str(error)
