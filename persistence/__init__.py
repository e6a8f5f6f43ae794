"""Storage for persistent actors: the engine contract and its in-memory and PostgreSQL engines.

The public names are listed in ``__all__``: the contract (:class:`Engine` and its value
types), the in-memory engine, :func:`open_engine` for the PostgreSQL one, and every error
(see :mod:`persistence.errors` for their hierarchy). The PostgreSQL engine's own names are
in :mod:`persistence.postgres`.
"""

from persistence.engine import (
    MAX_SEQUENCE_NR,
    DurableState,
    Engine,
    Json,
    NewEvent,
    RecoveryStart,
    Snapshot,
    StoredEvent,
)
from persistence.errors import (
    AppendRefused,
    ConcurrencyConflict,
    EmbeddedServerError,
    InvalidArgument,
    JournalIntegrityError,
    LeaseLost,
    MembershipLost,
    PersistenceError,
    SchemaError,
    SerializationError,
    StateRevisionConflict,
    StorageUnavailable,
    UnexpectedResponse,
)
from persistence.factory import open_engine
from persistence.memory import InMemoryEngine

__all__ = [
    "MAX_SEQUENCE_NR",
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
