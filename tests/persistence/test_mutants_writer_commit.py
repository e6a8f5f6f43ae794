"""The group-commit writer's answers that the other tests let through (mutants of
``persistence/postgres/writer/commit.py``; ``make mutation MODULES=writer_commit``).

An error without an SQLSTATE is a failure of the connection, never a refused statement; a
refused request, or one holding a value the driver cannot send (a lone surrogate, or a
character the connection's client encoding cannot carry), fails alone wherever it sits in its
batch, the requests after it included; a deadlock or serialisation failure is retried
up to MAX_ATTEMPTS times in all. The retry test injects the server's deadlock error in front
of the real statement (PostgreSQL cannot be made to deadlock on a given attempt); the write
itself still goes to PostgreSQL.

A large batch whose event preparation fails while its statement runs commits nothing: the
statement is cancelled, so no caller hears a failure for events that then commit. The fault
is injected into the Python preparation step; the statement is held on the server by a lock
on the journal taken through a connection of the test's own, so that the cancellation
provably comes before the commit could.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors
from psycopg import sql

from persistence import AppendRefused, NewEvent, PersistenceError, StorageUnavailable
from persistence.postgres.writer import commit as commit_module
from persistence.postgres.writer.commit import (
    MAX_ATTEMPTS,
    OVERLAP_MIN_EVENTS,
    BatchCommitter,
    refused_statement,
)
from tests.conftest import EngineFactory


def test_an_error_without_sqlstate_is_not_a_refused_statement() -> None:
    assert refused_statement(psycopg.OperationalError("server closed the connection")) is False
    assert refused_statement(psycopg.InterfaceError("the connection is closed")) is False


async def test_a_refused_request_first_in_its_batch_fails_alone(
    engine_factory: EngineFactory,
) -> None:
    pg_engine = await engine_factory(max_batches_in_flight=1)  # all in one batch
    huge_tag = "".join(uuid.uuid4().hex for _ in range(400))  # beyond a btree entry's size
    results = await asyncio.gather(
        pg_engine.append("odd", [NewEvent("E", {}, tags=frozenset({huge_tag}))], 0),
        *(pg_engine.append(f"ok-{i}", [NewEvent("E", {"i": i})], 0) for i in range(5)),
        return_exceptions=True,
    )
    refused = results[0]
    assert isinstance(refused, PersistenceError)
    assert not isinstance(refused, StorageUnavailable)
    assert all(isinstance(r, list) for r in results[1:]), results[1:]
    assert await pg_engine.persistence_ids() == [f"ok-{i}" for i in range(5)]


@pytest.mark.parametrize("failures", [MAX_ATTEMPTS - 1, MAX_ATTEMPTS])
async def test_a_deadlocked_batch_is_retried_up_to_max_attempts_in_all(
    engine_factory: EngineFactory, monkeypatch: pytest.MonkeyPatch, failures: int
) -> None:
    pg_engine = await engine_factory()
    transact = BatchCommitter._transact
    attempts = 0

    async def deadlocking(self: BatchCommitter, *args: Any) -> Any:
        nonlocal attempts
        attempts += 1
        if attempts <= failures:
            raise pg_errors.DeadlockDetected("deadlock detected (injected)")
        return await transact(self, *args)

    monkeypatch.setattr(BatchCommitter, "_transact", deadlocking)
    if failures < MAX_ATTEMPTS:
        stored = await pg_engine.append("p", [NewEvent("E", {})], 0)
        assert [e.sequence_nr for e in stored] == [1]
        assert attempts == MAX_ATTEMPTS
    else:
        with pytest.raises(StorageUnavailable, match="deadlock detected"):
            await pg_engine.append("p", [NewEvent("E", {})], 0)
        assert attempts == MAX_ATTEMPTS
        assert await pg_engine.highest_sequence_nr("p") == 0


async def test_a_value_the_driver_cannot_send_fails_alone_in_its_batch(
    engine_factory: EngineFactory,
) -> None:
    pg_engine = await engine_factory(max_batches_in_flight=1)  # all in one batch
    results = await asyncio.gather(
        pg_engine.append("bad-type", [NewEvent("E\udfff", {})], 0),
        *(pg_engine.append(f"ok-{i}", [NewEvent("E", {"i": i})], 0) for i in range(3)),
        return_exceptions=True,
    )
    assert isinstance(results[0], ValueError) and "surrogate" in str(results[0])
    assert all(isinstance(r, list) for r in results[1:]), results[1:]
    assert await pg_engine.persistence_ids() == ["ok-0", "ok-1", "ok-2"]


async def test_a_value_the_client_encoding_cannot_carry_fails_alone_in_its_batch(
    engine_factory: EngineFactory, database_url: str
) -> None:
    """A connection whose client encoding (here LATIN1, as a URL may ask) cannot carry a
    character makes the driver raise ``UnicodeEncodeError``, a ``ValueError``, while it
    encodes the batch's parameters: only the request holding it is refused."""
    separator = "&" if "?" in database_url else "?"
    latin1 = await engine_factory(
        f"{database_url}{separator}client_encoding=LATIN1", max_batches_in_flight=1
    )
    results = await asyncio.gather(
        latin1.append("euro", [NewEvent("E", {"price": "10 \u20ac"})], 0),
        *(
            latin1.append(f"ok-{i}", [NewEvent("E", {"i": i, "s": "caf\u00e9"})], 0)
            for i in range(3)
        ),
        return_exceptions=True,
    )
    assert isinstance(results[0], AppendRefused), results[0]
    assert "latin-1" in str(results[0])
    assert [[e.payload for e in r] for r in results[1:]] == [  # type: ignore[union-attr]
        [{"i": i, "s": "caf\u00e9"}] for i in range(3)
    ]
    assert await latin1.persistence_ids() == ["ok-0", "ok-1", "ok-2"]


@pytest.mark.parametrize("size", [OVERLAP_MIN_EVENTS, 2 * OVERLAP_MIN_EVENTS])
async def test_a_large_batch_whose_preparation_fails_commits_none_of_its_events(
    engine_factory: EngineFactory,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    size: int,
) -> None:
    """A batch of OVERLAP_MIN_EVENTS events or more prepares them while its statement runs:
    the callers hear the preparation's failure, and the statement is cancelled, so none of
    the batch's events is stored, even once the journal is free again. (Prepared after the
    commit instead, the failure would come too late; here the append would wait on the lock,
    hence the bound on it.)"""
    pg_engine = await engine_factory(max_batches_in_flight=1)
    transact = BatchCommitter._transact
    statements: list[asyncio.Task[Any]] = []

    async def recorded(self: BatchCommitter, *args: Any) -> Any:
        task = asyncio.current_task()
        assert task is not None
        statements.append(task)
        return await transact(self, *args)

    def failing(*args: Any) -> Any:
        raise RuntimeError("event preparation failed (injected)")

    monkeypatch.setattr(BatchCommitter, "_transact", recorded)
    monkeypatch.setattr(commit_module, "unstamped_events", failing)
    events = [NewEvent("E", {"i": i}) for i in range(size)]
    locker = await psycopg.AsyncConnection.connect(database_url)
    try:
        # Held until the batch's statement has ended (or 10 s): it cannot commit meanwhile.
        await locker.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(pg_engine.names.journal))
        with pytest.raises(RuntimeError, match="injected"):
            await asyncio.wait_for(pg_engine.append("big", events, 0), timeout=10)
        assert statements, "the batch's statement never started"
        await asyncio.wait(statements, timeout=10)
    finally:
        await locker.rollback()
        await locker.close()
    # A statement left running would commit now that the lock is gone.
    await asyncio.wait(statements, timeout=10)
    assert all(task.done() for task in statements)
    assert await pg_engine.highest_sequence_nr("big") == 0
    assert await pg_engine.persistence_ids() == []


async def test_a_batch_whose_backend_is_terminated_fails_as_unavailable_not_refused(
    engine_factory: EngineFactory, database_url: str
) -> None:
    """A server failure (here the batch's backend terminated while its statement waits) is
    no refused statement: the caller hears StorageUnavailable (it may or may not have been
    written), not AppendRefused as if its request were at fault."""
    pg_engine = await engine_factory(max_batches_in_flight=1)
    locker = await psycopg.AsyncConnection.connect(database_url)
    admin = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    try:
        await locker.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(pg_engine.names.journal))
        append = asyncio.ensure_future(pg_engine.append("p", [NewEvent("E", {})], 0))
        terminated: list[tuple[Any, ...]] = []
        for _ in range(1_000):  # the statement reaches the lock within a few turns
            cur = await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND wait_event_type = 'Lock'",
                [pg_engine.application_name],
            )
            terminated = await cur.fetchall()
            if terminated:
                break
            await asyncio.sleep(0.01)
        assert terminated, "the batch's statement never waited on the lock"
        with pytest.raises(StorageUnavailable, match="may or may not have been written"):
            await asyncio.wait_for(append, timeout=10)
    finally:
        await locker.rollback()
        await locker.close()
        await admin.close()
    assert await pg_engine.highest_sequence_nr("p") == 0


async def test_a_version_the_encoder_cannot_carry_fails_alone_in_its_batch(
    engine_factory: EngineFactory,
) -> None:
    """An event version beyond 64 bits (no check refuses it before the writer) makes the
    batch's column encoder raise a ``TypeError``: only that request is refused."""
    pg_engine = await engine_factory(max_batches_in_flight=1)  # all in one batch
    results = await asyncio.gather(
        pg_engine.append("huge", [NewEvent("E", {}, version=2**64)], 0),
        *(pg_engine.append(f"ok-{i}", [NewEvent("E", {"i": i})], 0) for i in range(3)),
        return_exceptions=True,
    )
    assert isinstance(results[0], AppendRefused), results[0]
    assert "64-bit" in str(results[0])
    assert all(isinstance(r, list) for r in results[1:]), results[1:]
    assert await pg_engine.persistence_ids() == ["ok-0", "ok-1", "ok-2"]
