"""The public names of each package, pinned: adding or removing one is a visible decision."""

from __future__ import annotations

import importlib

import pytest

import persistence
import persistence.postgres


def test_persistence_exports() -> None:
    assert sorted(persistence.__all__) == [
        "AppendRefused",
        "ConcurrencyConflict",
        "DurableState",
        "EmbeddedServerError",
        "Engine",
        "InMemoryEngine",
        "InvalidArgument",
        "JournalIntegrityError",
        "Json",
        "LeaseLost",
        "MAX_SEQUENCE_NR",
        "MembershipLost",
        "NewEvent",
        "PersistenceError",
        "RecoveryStart",
        "SchemaError",
        "SerializationError",
        "Snapshot",
        "StateRevisionConflict",
        "StorageUnavailable",
        "StoredEvent",
        "UnexpectedResponse",
        "open_engine",
    ]


def test_postgres_exports() -> None:
    assert sorted(persistence.postgres.__all__) == [
        "PostgresConfig",
        "PostgresEngine",
        "database_url_from_env",
        "describe_target",
    ]


@pytest.mark.parametrize("package", ["persistence", "persistence.postgres"])
def test_every_exported_name_is_importable(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"


def test_every_error_derives_from_persistence_error() -> None:
    errors = [
        value
        for value in vars(persistence.errors).values()
        if isinstance(value, type) and issubclass(value, BaseException)
    ]
    assert len(errors) >= 10
    assert all(issubclass(error, persistence.PersistenceError) for error in errors)
    assert {e.__name__ for e in errors} <= set(persistence.__all__)
