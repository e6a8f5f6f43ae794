"""A snapshot's binary part (``blob``), on every engine, and the PostgreSQL migration that
added it: old databases upgrade, and their snapshots read as having no blob."""

from __future__ import annotations

import os

import psycopg
import pytest
from psycopg import sql

from persistence import Engine, SerializationError
from persistence.errors import InvalidArgument
from persistence.postgres import PostgresEngine, schema
from tests.conftest import EngineFactory, drop_schemas, unique_schema

PID = "user-1"
EVERY_BYTE = bytes(range(256)) * 4
"""NUL, every high byte and bytes that are not UTF-8: a blob is not text."""


async def test_a_blob_comes_back_byte_for_byte(engine: Engine) -> None:
    await engine.save_snapshot(PID, 3, {"snapshot_version": 3}, EVERY_BYTE)
    snapshot = await engine.load_snapshot(PID)
    assert snapshot is not None
    assert (snapshot.sequence_nr, snapshot.payload, snapshot.blob) == (
        3, {"snapshot_version": 3}, EVERY_BYTE
    )
    assert type(snapshot.blob) is bytes


async def test_a_snapshot_saved_without_a_blob_has_none(engine: Engine) -> None:
    await engine.save_snapshot(PID, 1, {"at": 1})
    await engine.save_snapshot(PID, 2, {"at": 2}, b"")
    first = await engine.load_snapshot(PID, 1)
    second = await engine.load_snapshot(PID, 2)
    assert first is not None and first.blob is None
    assert second is not None and second.blob == b""  # empty, not absent


async def test_each_snapshot_keeps_its_own_blob(engine: Engine) -> None:
    for seq in (10, 20, 30):
        await engine.save_snapshot(PID, seq, {"at": seq}, f"blob {seq}".encode())
    await engine.save_snapshot("other", 40, {"at": 40}, b"other")
    at_25 = await engine.load_snapshot(PID, 25)
    latest = await engine.load_snapshot(PID)
    assert at_25 is not None and at_25.blob == b"blob 20"
    assert latest is not None and latest.blob == b"blob 30"
    await engine.delete_snapshots(PID, 30, 30)
    after_delete = await engine.load_snapshot(PID)
    assert after_delete is not None and after_delete.blob == b"blob 20"


async def test_overwriting_a_snapshot_replaces_its_blob(engine: Engine) -> None:
    await engine.save_snapshot(PID, 5, {"v": 1}, b"first")
    await engine.save_snapshot(PID, 5, {"v": 2}, b"second")
    replaced = await engine.load_snapshot(PID)
    assert replaced is not None and (replaced.payload, replaced.blob) == ({"v": 2}, b"second")
    await engine.save_snapshot(PID, 5, {"v": 3})
    cleared = await engine.load_snapshot(PID)
    assert cleared is not None and (cleared.payload, cleared.blob) == ({"v": 3}, None)


async def test_a_large_blob(engine: Engine) -> None:
    blob = os.urandom(3_000_000)
    await engine.save_snapshot(PID, 7, {"size": len(blob)}, blob)
    snapshot = await engine.load_snapshot(PID)
    assert snapshot is not None and snapshot.blob == blob


@pytest.mark.parametrize("blob", ["text", bytearray(b"mutable"), memoryview(b"view"), 42])
async def test_a_blob_that_is_not_bytes_is_refused_before_anything_is_written(
    engine: Engine, blob: object
) -> None:
    with pytest.raises(InvalidArgument, match="must be bytes"):
        await engine.save_snapshot(PID, 1, {"at": 1}, blob)  # type: ignore[arg-type]
    assert await engine.load_snapshot(PID) is None


async def test_a_payload_that_is_not_json_is_refused_with_its_blob(engine: Engine) -> None:
    with pytest.raises(SerializationError, match="snapshot"):
        await engine.save_snapshot(PID, 1, object(), b"blob")
    assert await engine.load_snapshot(PID) is None


# -- PostgreSQL: migration 3 -------------------------------------------------------------------


async def test_a_version_2_database_upgrades_and_its_snapshots_read_without_a_blob(
    engine_factory: EngineFactory, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique_schema("v2")
    names = schema.Names(name, "")
    try:
        with monkeypatch.context() as before:  # the code as it was before migration 3
            before.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:2])
            before.setattr(schema, "LATEST_VERSION", 2)
            async with await psycopg.AsyncConnection.connect(database_url) as conn:
                assert await schema.migrate(conn, names) == [1, 2]
                await conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (persistence_id, sequence_nr, created_at, payload) "
                        "VALUES (%s, 4, now(), %s::jsonb)"
                    ).format(names.snapshot),
                    [PID, '{"snapshot_version": 2, "state": "old"}'],
                )
                await conn.commit()
        engine: PostgresEngine = await engine_factory(schema=name, table_prefix="")
        old = await engine.load_snapshot(PID)
        assert old is not None
        assert (old.sequence_nr, old.payload, old.blob) == (
            4, {"snapshot_version": 2, "state": "old"}, None
        )
        await engine.save_snapshot(PID, 9, {"snapshot_version": 3}, b"\x00new")
        new = await engine.load_snapshot(PID)
        assert new is not None and new.blob == b"\x00new"
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            assert await schema.schema_version(conn, names) == 3
            cur = await conn.execute(
                "SELECT attstorage FROM pg_attribute WHERE attrelid = %s::regclass "
                "AND attname = 'blob'",
                [f'"{name}".snapshot'],
            )
            assert await cur.fetchone() == ("e",)  # EXTERNAL: stored uncompressed
    finally:
        await drop_schemas(database_url, [name])
