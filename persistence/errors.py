"""The errors an engine raises: each names the persistence id or key it concerns."""

from __future__ import annotations


class PersistenceError(Exception):
    """Base class of every error raised by an engine."""


class ConcurrencyConflict(PersistenceError):
    """Another writer already took the sequence numbers an append expected to write.

    The actor that sees this must recover from the journal again; it never overwrites.
    """

    def __init__(self, persistence_id: str, expected_sequence_nr: int, actual_sequence_nr: int):
        super().__init__(
            f"concurrency conflict on {persistence_id!r}: expected highest sequence_nr "
            f"{expected_sequence_nr}, the journal holds {actual_sequence_nr}"
        )
        self.persistence_id = persistence_id
        self.expected_sequence_nr = expected_sequence_nr
        self.actual_sequence_nr = actual_sequence_nr


class StateRevisionConflict(PersistenceError):
    """A durable-state write named a revision that is no longer the current one."""

    def __init__(self, key: str, expected_revision: int, actual_revision: int):
        super().__init__(
            f"revision conflict on state {key!r}: expected revision {expected_revision}, "
            f"the store holds {actual_revision}"
        )
        self.key = key
        self.expected_revision = expected_revision
        self.actual_revision = actual_revision


class SerializationError(PersistenceError, ValueError):
    """A payload could not be stored as JSON; nothing was written."""


class JournalIntegrityError(PersistenceError):
    """The journal is not what recovery needs: a gap in sequence numbers, an unknown version."""


class StorageUnavailable(PersistenceError):
    """The storage could not be reached (server down, bad credentials, missing database).

    The message is one line naming host, port and database, never a password.
    """


class EmbeddedServerError(StorageUnavailable):
    """The embedded PostgreSQL could not be started, or its database not created.

    The message names the data directory and where the server's log is.
    """
