"""The group-commit writer's answers that the other tests let through (mutants of
``persistence/postgres/writer/commit.py``; ``make mutation MODULES=writer_commit``).

An error without an SQLSTATE is a failure of the connection, never a refused statement; a
refused request, or one holding a value the driver cannot send, fails alone wherever it sits
in its batch, the requests after it included; a deadlock or serialisation failure is retried
up to MAX_ATTEMPTS times in all. The retry test injects the server's deadlock error in front
of the real statement (PostgreSQL cannot be made to deadlock on a given attempt); the write
itself still goes to PostgreSQL.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors

from persistence import NewEvent, PersistenceError, StorageUnavailable
from persistence.postgres.writer.commit import MAX_ATTEMPTS, BatchCommitter, refused_statement
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
