"""Storage for persistent actors: the engine contract and its in-memory and PostgreSQL engines."""

from persistence.engine import (
    MAX_SEQUENCE_NR,
    DurableState,
    Engine,
    Json,
    NewEvent,
    Snapshot,
    StoredEvent,
)
from persistence.errors import (
    ConcurrencyConflict,
    JournalIntegrityError,
    PersistenceError,
    SerializationError,
    StateRevisionConflict,
    StorageUnavailable,
)
from persistence.factory import open_engine
from persistence.memory import InMemoryEngine

__all__ = [
    "MAX_SEQUENCE_NR",
    "ConcurrencyConflict",
    "DurableState",
    "Engine",
    "InMemoryEngine",
    "JournalIntegrityError",
    "Json",
    "NewEvent",
    "PersistenceError",
    "SerializationError",
    "Snapshot",
    "StateRevisionConflict",
    "StorageUnavailable",
    "StoredEvent",
    "open_engine",
]
