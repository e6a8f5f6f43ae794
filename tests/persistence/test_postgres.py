"""What only the PostgreSQL engine has to prove: connection errors, migrations, several
writers on one id, by-tag reads racing writers, and writes across a dying connection."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from persistence import (
    ConcurrencyConflict,
    NewEvent,
    PersistenceError,
    SerializationError,
    StorageUnavailable,
    StoredEvent,
    open_engine,
)
from persistence.embedded import _ensure_database, start_embedded, start_embedded_async
from persistence.errors import EmbeddedServerError, InvalidArgument
from persistence.postgres import PostgresConfig, PostgresEngine
from persistence.postgres.schema import LATEST_VERSION, Names, schema_version
from tests.conftest import EngineFactory, private_embedded, unique_schema

# -- connection errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://postgres:hunter2@127.0.0.1:1/test", "127.0.0.1:1/test"),
        ("postgresql://nobody_here:hunter2@127.0.0.1:5432/test", "127.0.0.1:5432/test"),
    ],
    ids=["unreachable", "bad-credentials"],
)
async def test_connection_errors_are_one_line_and_hide_the_password(
    url: str, expected: str
) -> None:
    engine = PostgresEngine(url, schema=unique_schema(), connect_timeout=2)
    with pytest.raises(StorageUnavailable) as info:
        await engine.start()
    message = str(info.value)
    assert expected in message
    assert "hunter2" not in message
    assert "\n" not in message


async def test_a_missing_database_is_named(database_url: str) -> None:
    params = psycopg.conninfo.conninfo_to_dict(database_url)
    params["dbname"] = "no_such_database_here"
    params["password"] = "hunter2"
    url = psycopg.conninfo.make_conninfo(**params)
    engine = PostgresEngine(url, schema=unique_schema(), connect_timeout=2)
    with pytest.raises(StorageUnavailable, match="no_such_database_here") as info:
        await engine.start()
    assert "hunter2" not in str(info.value) and "\n" not in str(info.value)


def test_bad_schema_names_are_refused() -> None:
    with pytest.raises(ValueError, match="schema"):
        PostgresConfig("postgresql://x@h/db", schema='evil"; drop table x; --')
    with pytest.raises(ValueError, match="table_prefix"):
        PostgresConfig("postgresql://x@h/db", table_prefix="Bad-Prefix")


async def test_a_closed_engine_refuses_work(engine_factory: EngineFactory) -> None:
    engine = await engine_factory()
    await engine.close()
    with pytest.raises(StorageUnavailable, match="not started"):
        await engine.append("p", [NewEvent("E", {})], 0)
    with pytest.raises(StorageUnavailable, match="not started"):
        await engine.highest_sequence_nr("p")


# -- schema ----------------------------------------------------------------------------------


async def test_migrations_are_idempotent_and_safe_when_started_at_once(
    engine_factory: EngineFactory, database_url: str
) -> None:
    schema = unique_schema("mig")
    engines = [PostgresEngine(database_url, schema=schema, pool_max_size=2) for _ in range(4)]
    try:
        await asyncio.gather(*(e.start() for e in engines))
        again = await engine_factory(schema=schema, table_prefix="")
        await again.append("p", [NewEvent("E", {})], 0)
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            assert await schema_version(conn, Names(schema, "")) == LATEST_VERSION
            cur = await conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(Names(schema, "").schema_version)
            )
            assert await cur.fetchone() == (LATEST_VERSION,)
    finally:
        for engine in engines:
            await engine.close()


async def test_schema_and_table_prefix_are_configurable(
    engine_factory: EngineFactory, database_url: str
) -> None:
    schema = unique_schema("cfg")
    first = await engine_factory(schema=schema, table_prefix="app_")
    second = await engine_factory(schema=schema, table_prefix="other_")
    await first.append("p", [NewEvent("E", {"who": "first"})], 0)
    assert await second.highest_sequence_nr("p") == 0
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
            "ORDER BY table_name",
            [schema],
        )
        tables = {row[0] for row in await cur.fetchall()}
    assert {"app_journal", "app_snapshot", "other_journal", "other_durable_state"} <= tables


async def test_a_nul_character_is_refused_before_anything_is_written(
    pg_engine: PostgresEngine,
) -> None:
    with pytest.raises(SerializationError, match="U\\+0000"):
        await pg_engine.append("p", [NewEvent("E", {"ok": 1}), NewEvent("E", {"s": "a\x00b"})], 0)
    with pytest.raises(ValueError, match="NUL"):
        await pg_engine.append("p", [NewEvent("E\x00", {})], 0)
    assert await pg_engine.highest_sequence_nr("p") == 0


async def test_payloads_replay_as_written_big_integers_and_deep_nesting_included(
    pg_engine: PostgresEngine,
) -> None:
    """A page's payloads are decoded in one call: integers beyond 64 bits stay exact (a
    decoder that made them floats would still pass small payloads), deep nesting decodes."""
    big = {"n": 10**30, "m": -(2**64), "f": 1e300, "s": "Zoë 日本"}
    deep: object = 1
    for _ in range(600):
        deep = [deep]
    plain = {"a": [1, 2.5, None, True], "b": {"c": ""}}
    events = [NewEvent("E", plain), NewEvent("E", big), NewEvent("E", {"deep": deep})]
    await pg_engine.append("p", events, 0)
    replayed = [e.payload async for e in pg_engine.replay("p", 1, 3)]
    assert replayed == [plain, big, {"deep": deep}]
    start = await pg_engine.recovery_start("p", 10)
    assert [e.payload for e in start.events] == [plain, big, {"deep": deep}]
    await pg_engine.append("q", [NewEvent("E", plain)], 0)
    assert [e.payload async for e in pg_engine.replay("q", 1, 1)] == [plain]


# -- writers ---------------------------------------------------------------------------------


async def test_a_refused_request_fails_alone_in_its_batch(pg_engine: PostgresEngine) -> None:
    """A request the database refuses must not take the other actors' events with it."""
    huge_tag = "".join(uuid.uuid4().hex for _ in range(400))  # beyond a btree entry's size
    results = await asyncio.gather(
        *(pg_engine.append(f"ok-{i}", [NewEvent("E", {"i": i})], 0) for i in range(10)),
        pg_engine.append("odd", [NewEvent("E", {}, tags=frozenset({huge_tag}))], 0),
        *(pg_engine.append(f"ok-{i}", [NewEvent("E", {"i": i})], 1) for i in range(10)),
        return_exceptions=True,
    )
    refused = results[10]
    assert isinstance(refused, PersistenceError)
    assert not isinstance(refused, StorageUnavailable)
    assert "'odd'" in str(refused) and "\n" not in str(refused)
    assert all(isinstance(r, list) for r in results[:10] + results[11:])
    assert await pg_engine.persistence_ids() == sorted(f"ok-{i}" for i in range(10))
    assert await pg_engine.highest_sequence_nr("ok-3") == 2


async def test_two_engines_on_one_id_leave_one_winner_per_sequence_nr(
    engine_factory: EngineFactory,
) -> None:
    """Two pools, as two processes would have: every sequence_nr is won exactly once."""
    schema = unique_schema("two")
    engines = [await engine_factory(schema=schema) for _ in range(2)]
    pid = "contested"
    acked: dict[int, tuple[str, int]] = {}
    conflicts = 0

    async def writer(engine: PostgresEngine, name: str) -> None:
        nonlocal conflicts
        expected = 0
        for k in range(60):
            try:
                stored = await engine.append(
                    pid, [NewEvent("E", {"w": name, "k": k}), NewEvent("F", {"w": name})], expected
                )
            except ConcurrencyConflict as conflict:
                conflicts += 1
                expected = conflict.actual_sequence_nr
                continue
            for event in stored:
                assert event.sequence_nr not in acked, "a sequence_nr was acknowledged twice"
                acked[event.sequence_nr] = (event.writer_id, event.ordering)
            expected = stored[-1].sequence_nr

    await asyncio.gather(*(writer(e, f"w{i}") for i, e in enumerate(engines) for _ in range(2)))
    journal = [e async for e in engines[0].replay(pid)]
    assert [e.sequence_nr for e in journal] == list(range(1, len(journal) + 1))
    assert {e.sequence_nr: (e.writer_id, e.ordering) for e in journal} == acked
    assert conflicts > 0
    assert {writer_id for writer_id, _ in acked.values()} == {e.writer_id for e in engines}
    for a, b in zip(journal[::2], journal[1::2], strict=True):
        assert a.payload["w"] == b.payload["w"]  # a batch is never split
    assert await engines[1].highest_sequence_nr(pid) == len(journal)


async def test_group_commit_shares_transactions(pg_engine: PostgresEngine) -> None:
    await asyncio.gather(
        *(pg_engine.append(f"id-{i}", [NewEvent("E", {"i": i})], 0) for i in range(200))
    )
    assert pg_engine.writer.batches_written < 50
    assert len(await pg_engine.persistence_ids()) == 200


async def test_a_mixed_batch_is_stored_as_returned(engine_factory: EngineFactory) -> None:
    """One batch holding requests of several runs (types and versions changing within one
    append), single events, tagged events and a loser: every winner's events are stored
    exactly as returned, in order, and the loser's positions are skipped, not reused."""
    pg_engine = await engine_factory(max_batches_in_flight=1)  # all in one batch
    await pg_engine.append("loser", [NewEvent("E", {})], 0)
    mixed = [
        NewEvent("A", {"k": 0}),
        NewEvent("A", {"k": 1}),
        NewEvent("B", {"k": 2}),
        NewEvent("B", {"k": 3}, version=2),
        NewEvent("A", {"k": 4}, tags=frozenset({"t1", "t2"})),
        NewEvent("A", {"k": 5}),
    ]
    results = await asyncio.gather(
        pg_engine.append("single-1", [NewEvent("S", {"s": 1})], 0),
        pg_engine.append("mixed", mixed, 0),
        pg_engine.append("loser", [NewEvent("E", {"late": True})], 0),
        pg_engine.append("single-2", [NewEvent("T", {"s": 2}, version=3)], 0),
        pg_engine.append("alike", [NewEvent("C", {"c": c}) for c in range(5)], 0),
        return_exceptions=True,
    )
    assert pg_engine.writer.batches_written == 2  # the first append, then this one batch
    conflict = results[2]
    assert isinstance(conflict, ConcurrencyConflict) and conflict.actual_sequence_nr == 1
    written = [r for r in results if isinstance(r, list)]
    assert len(written) == 4
    for stored in written:
        pid = stored[0].persistence_id
        assert [e async for e in pg_engine.replay(pid)] == stored
        assert [e.sequence_nr for e in stored] == list(range(1, len(stored) + 1))
    stored_mixed = results[1]
    assert isinstance(stored_mixed, list)
    assert [(e.type, e.version, e.payload["k"]) for e in stored_mixed] == [
        ("A", 1, 0), ("A", 1, 1), ("B", 1, 2), ("B", 2, 3), ("A", 1, 4), ("A", 1, 5)
    ]
    orderings = [e.ordering for stored in written for e in stored]
    assert orderings == sorted(orderings) and len(set(orderings)) == len(orderings)
    assert len({e.timestamp for stored in written for e in stored}) == 1
    # The loser held position 9 (after single-1 and mixed's six): skipped.
    base = written[0][0].ordering - 1
    assert [e.ordering - base for e in written[2]] == [9]
    assert [e async for e in pg_engine.events_by_tag("t2")] == [stored_mixed[4]]


async def test_a_batch_of_single_events_is_stored_as_returned(
    engine_factory: EngineFactory,
) -> None:
    """The shape of many actors appending one event each, with a tag and a loser."""
    pg_engine = await engine_factory(max_batches_in_flight=1)  # all in one batch
    await pg_engine.append("loser", [NewEvent("E", {})], 0)
    results = await asyncio.gather(
        pg_engine.append("a", [NewEvent("A", {"a": 1}, version=2)], 0),
        pg_engine.append("loser", [NewEvent("E", {"late": True})], 0),
        pg_engine.append("b", [NewEvent("B", {"b": 1}, tags=frozenset({"t"}))], 0),
        return_exceptions=True,
    )
    assert pg_engine.writer.batches_written == 2
    assert isinstance(results[1], ConcurrencyConflict)
    a, b = results[0], results[2]
    assert isinstance(a, list) and isinstance(b, list)
    assert [e async for e in pg_engine.replay("a")] == a
    assert [e async for e in pg_engine.replay("b")] == b
    assert (a[0].type, a[0].version, a[0].sequence_nr) == ("A", 2, 1)
    assert b[0].ordering - a[0].ordering == 2  # the loser's position is skipped
    assert [e async for e in pg_engine.events_by_tag("t")] == b
    assert await pg_engine.highest_sequence_nr("loser") == 1


async def test_a_large_batch_with_a_loser_is_stored_as_returned(
    engine_factory: EngineFactory,
) -> None:
    """A batch large enough to prepare its events while the server commits: the loser's
    prepared events are dropped, the winners' are stamped with their own orderings."""
    pg_engine = await engine_factory(max_batches_in_flight=1)  # all in one batch
    await pg_engine.append("loser", [NewEvent("E", {})], 0)
    results = await asyncio.gather(
        pg_engine.append("big-1", [NewEvent("B", {"n": n}) for n in range(300)], 0),
        pg_engine.append("loser", [NewEvent("E", {"n": n}) for n in range(200)], 0),
        pg_engine.append("big-2", [NewEvent("C", {"n": n}, version=2) for n in range(300)], 0),
        return_exceptions=True,
    )
    assert pg_engine.writer.batches_written == 2
    assert isinstance(results[1], ConcurrencyConflict)
    big1, big2 = results[0], results[2]
    assert isinstance(big1, list) and isinstance(big2, list)
    assert [e async for e in pg_engine.replay("big-1")] == big1
    assert [e async for e in pg_engine.replay("big-2")] == big2
    assert big2[0].ordering - big1[-1].ordering == 201  # the loser's 200 positions skipped
    assert [e.payload["n"] for e in big2] == list(range(300))


async def test_per_id_order_is_kept_for_pipelined_appends(pg_engine: PostgresEngine) -> None:
    """Appends queued without awaiting each other keep their order within one id."""
    calls = [pg_engine.append("p", [NewEvent("E", {"k": k})], k) for k in range(30)]
    results = await asyncio.gather(*calls)
    assert [r[0].sequence_nr for r in results] == list(range(1, 31))
    assert [e.payload["k"] async for e in pg_engine.replay("p")] == list(range(30))


async def test_by_tag_readers_never_skip_events_committed_late(
    engine_factory: EngineFactory,
) -> None:
    schema = unique_schema("tag")
    writers = [await engine_factory(schema=schema) for _ in range(3)]
    reader = await engine_factory(schema=schema)
    tags = frozenset({"all"})
    done = asyncio.Event()
    seen: list[StoredEvent] = []

    async def write(engine: PostgresEngine, n: int) -> None:
        for k in range(40):
            await asyncio.gather(
                *(engine.append(f"w{n}-{i}", [NewEvent("E", {}, tags=tags)], k) for i in range(5))
            )

    async def read() -> None:
        after = 0
        while True:
            finished = done.is_set()
            async for event in reader.events_by_tag("all", after_ordering=after):
                seen.append(event)
                after = event.ordering
            if finished:
                return
            await asyncio.sleep(0)

    reading = asyncio.create_task(read())
    await asyncio.gather(*(write(e, n) for n, e in enumerate(writers)))
    done.set()
    await reading
    everything = [e async for e in reader.events_by_tag("all")]
    assert len(everything) == 3 * 40 * 5
    assert [e.ordering for e in seen] == [e.ordering for e in everything]


# -- failures mid-write ----------------------------------------------------------------------


class Ledger:
    """What writers were told: acknowledged events, and attempts that failed."""

    def __init__(self, events_per_append: int = 1, padding: int = 0) -> None:
        self.events_per_append = events_per_append
        self.padding = "x" * padding
        self.acked: dict[tuple[str, int], str] = {}
        self.failed_attempts: set[str] = set()
        self.conflicted_attempts: set[str] = set()
        self.failures: list[StorageUnavailable] = []
        self._acked_more = asyncio.Event()

    async def wait_acked(self, count: int) -> None:
        while len(self.acked) < count:
            self._acked_more.clear()
            await self._acked_more.wait()

    async def write_until(
        self, engine: PostgresEngine, pid: str, stop: asyncio.Event, minimum: int
    ) -> None:
        expected = 0
        written = 0
        while written < minimum or not stop.is_set():
            attempt = uuid.uuid4().hex
            try:
                events = [
                    NewEvent("E", {"attempt": attempt, "pad": self.padding})
                    for _ in range(self.events_per_append)
                ]
                stored = await engine.append(pid, events, expected)
            except StorageUnavailable as failure:
                self.failures.append(failure)
                self.failed_attempts.add(attempt)
                expected = await self._highest(engine, pid, stop)
                continue
            except ConcurrencyConflict as conflict:  # only after an unknown outcome
                self.conflicted_attempts.add(attempt)
                expected = conflict.actual_sequence_nr
                continue
            for event in stored:
                self.acked[(pid, event.sequence_nr)] = attempt
            self._acked_more.set()
            expected = stored[-1].sequence_nr
            written += 1

    @staticmethod
    async def _highest(engine: PostgresEngine, pid: str, stop: asyncio.Event) -> int:
        while True:
            try:
                return await engine.highest_sequence_nr(pid)
            except StorageUnavailable:
                await asyncio.sleep(0.05)

    async def verify(self, engine: PostgresEngine, pids: list[str]) -> None:
        assert self.failures, "the test never hit a write in flight"
        for failure in self.failures:
            assert "\n" not in str(failure)
        for pid in pids:
            journal = [e async for e in engine.replay(pid)]
            assert [e.sequence_nr for e in journal] == list(range(1, len(journal) + 1))
            stored = {(pid, e.sequence_nr): e.payload["attempt"] for e in journal}
            for key, attempt in self.acked.items():
                if key[0] == pid:
                    assert stored.get(key) == attempt, f"acknowledged {key} was lost"
            for key, attempt in stored.items():
                assert self.acked.get(key) == attempt or attempt in self.failed_attempts, (
                    f"{key} holds an event nobody wrote or that was refused"
                )
                assert attempt not in self.conflicted_attempts


async def test_terminating_the_backend_mid_write_loses_no_acknowledged_event(
    engine_factory: EngineFactory, database_url: str
) -> None:
    engine = await engine_factory(connect_timeout=10)
    pids = [f"actor-{i}" for i in range(20)]
    # Appends of 20 events of 2 kB keep the writer's transactions busy long enough to be
    # hit; a terminated idle connection is only replaced by the pool, and nobody notices.
    ledger = Ledger(events_per_append=20, padding=2_000)
    stop = asyncio.Event()
    writers = [asyncio.create_task(ledger.write_until(engine, p, stop, 5)) for p in pids]
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
        for attempt in range(3_000):
            await asyncio.sleep(0.001 * (attempt % 4))
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid() AND state = 'active'",
                [engine.application_name],
            )
            if len(ledger.failures) >= 3:
                break
    stop.set()
    await asyncio.gather(*writers)
    await ledger.verify(engine, pids)
    # Still the same engine, no restart: writing goes on.
    stored = await engine.append("after", [NewEvent("E", {})], 0)
    assert stored[0].sequence_nr == 1


async def test_the_writer_replaces_its_kept_connections_when_their_backends_die(
    engine_factory: EngineFactory, database_url: str
) -> None:
    """The writer keeps its connections between batches; terminated while idle, they are
    noticed before the next batch and replaced, and that batch is written."""
    engine = await engine_factory()
    await asyncio.gather(*(engine.append(f"p{i}", [NewEvent("E", {})], 0) for i in range(50)))
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
        cur = await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            [engine.application_name],
        )
        assert len(await cur.fetchall()) >= 1
    await asyncio.sleep(0.05)  # let the termination reach the sockets
    for round_ in range(2, 5):
        stored = await asyncio.gather(
            *(engine.append(f"p{i}", [NewEvent("E", {})], round_ - 1) for i in range(50))
        )
        assert [s[0].sequence_nr for s in stored] == [round_] * 50
    for i in range(50):
        assert await engine.highest_sequence_nr(f"p{i}") == 4


@pytest.mark.slow
async def test_a_server_restart_fails_in_flight_writes_and_later_writes_succeed(
    engine_factory: EngineFactory,
) -> None:
    with private_embedded("restart") as server:
        engine = await engine_factory(server.url, connect_timeout=2)
        pids = [f"actor-{i}" for i in range(10)]
        ledger = Ledger()
        stop = asyncio.Event()
        writers = [asyncio.create_task(ledger.write_until(engine, p, stop, 10)) for p in pids]
        await ledger.wait_acked(50)
        await asyncio.to_thread(server.stop_server)
        with pytest.raises(StorageUnavailable, match="not written: no connection"):
            await engine.append("while-down", [NewEvent("E", {})], 0)
        await asyncio.to_thread(server.start_server)
        # The first write after the restart succeeds: the pool replaced its dead connections.
        stored = await engine.append("after-restart", [NewEvent("E", {})], 0)
        assert stored[0].sequence_nr == 1
        stop.set()
        await asyncio.gather(*writers)
        await ledger.verify(engine, pids)
        assert await engine.highest_sequence_nr("while-down") == 0
        await engine.close()


async def test_abandoned_replays_release_their_connections(pg_engine: PostgresEngine) -> None:
    """A consumer that stops early (recovery failing half-way) leaks no pooled connection."""
    events = [NewEvent("E", {"i": i}) for i in range(2_500)]
    await pg_engine.append("p", events, 0)
    for _ in range(3 * pg_engine.config.pool_max_size):
        async for event in pg_engine.replay("p"):
            if event.sequence_nr == 10:
                break
    stored = await pg_engine.append("p", [NewEvent("E", {})], 2_500)
    assert stored[0].sequence_nr == 2_501


async def test_an_embedded_server_needs_a_data_directory_from_its_caller() -> None:
    with pytest.raises(InvalidArgument, match="needs a data directory"):
        start_embedded(None)
    with pytest.raises(InvalidArgument, match="needs a data directory"):
        await start_embedded_async(None)
    with pytest.raises(InvalidArgument, match="needs a data directory"):
        await open_engine(None)


def test_a_database_the_embedded_server_cannot_create_is_an_embedded_server_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(EmbeddedServerError, match="could not create the database") as info:
        _ensure_database("postgresql://postgres@127.0.0.1:1/postgres", "x", tmp_path)
    assert str(tmp_path / "log") in str(info.value)


@pytest.mark.slow
async def test_open_engine_without_a_url_starts_then_reuses_an_embedded_server() -> None:
    directory = Path(tempfile.mkdtemp(prefix="pg-open-engine-"))
    messages: list[str] = []
    try:
        first = await open_engine(None, data_dir=directory, announce=messages.append)
        await first.append("p", [NewEvent("E", {"n": 1})], 0)
        second = await open_engine(None, data_dir=directory, announce=messages.append)
        assert first.embedded is not None and second.embedded is not None
        assert first.embedded.created and not second.embedded.created
        assert [e.payload async for e in second.replay("p")] == [{"n": 1}]
        await first.close()  # the other engine of this process still needs the server
        await second.append("p", [NewEvent("E", {"n": 2})], 1)
        await second.close()
        assert str(directory / "pgdata") in messages[0] and "Started" in messages[0]
        assert messages[1].startswith("Using the embedded PostgreSQL")
        # Closed everywhere: the server stopped, and it starts again on the same data.
        again = await open_engine(None, data_dir=directory)
        assert await again.highest_sequence_nr("p") == 2
        await again.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def test_text_postgresql_cannot_store_is_refused_alone(pg_engine: PostgresEngine) -> None:
    results = await asyncio.gather(
        pg_engine.append("ok", [NewEvent("E", {"name": "Zoë"})], 0),
        pg_engine.append("bad", [NewEvent("E", {"name": "half \ud800 pair"})], 0),
        pg_engine.append("bad-type", [NewEvent("E\udfff", {})], 0),
        return_exceptions=True,
    )
    assert isinstance(results[0], list)
    assert isinstance(results[1], SerializationError) and "surrogate" in str(results[1])
    assert isinstance(results[2], ValueError) and "surrogate" in str(results[2])
    assert await pg_engine.persistence_ids() == ["ok"]


async def test_by_tag_reads_hold_back_events_behind_an_open_transaction(
    engine_factory: EngineFactory, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event whose ordering is above an open writing transaction's is held back, so
    that a reader resuming after it cannot skip what that transaction commits later."""
    monkeypatch.setattr("persistence.postgres.ordering.HORIZON_WAIT", 0.2)
    engine = await engine_factory()
    tags = frozenset({"t"})
    await engine.append("early", [NewEvent("E", {"n": 1}, tags=tags)], 0)
    async with await psycopg.AsyncConnection.connect(database_url) as blocker:
        await blocker.execute("SELECT pg_current_xact_id()")  # open, with a transaction id
        await engine.append("late", [NewEvent("E", {"n": 2}, tags=tags)], 0)
        assert [e.payload["n"] async for e in engine.events_by_tag("t")] == [1]
        assert [e.payload["n"] async for e in engine.replay("late")] == [2]
        await blocker.rollback()
    events = [e async for e in engine.events_by_tag("t")]
    assert [e.payload["n"] for e in events] == [1, 2]
    resumed = engine.events_by_tag("t", after_ordering=events[0].ordering)
    assert [e.payload["n"] async for e in resumed] == [2]
