"""The errors an engine raises: each names the persistence id, key or server it concerns.

Every error raised by this package derives from :class:`PersistenceError`, so a caller can
catch the whole layer at once; nothing lower (psycopg, the pool, the JSON encoder) crosses
the package's boundary untranslated. The hierarchy::

    PersistenceError
    ├── InvalidArgument (also a ValueError)   bad arguments or settings; nothing was done
    │   └── SerializationError                a payload is not storable as JSON
    ├── ConcurrencyConflict                   an append's expected sequence_nr was stale
    ├── StateRevisionConflict                 a durable-state write's revision was stale
    ├── JournalIntegrityError                 the journal is not what recovery needs
    ├── AppendRefused                         PostgreSQL refused one append's statement
    ├── SchemaError                           the stored schema does not fit this code
    ├── UnexpectedResponse                    PostgreSQL answered what a statement rules out
    ├── StorageUnavailable                    the storage cannot be reached
    │   └── EmbeddedServerError               the embedded PostgreSQL did not start
    ├── LeaseLost                             a fenced write or release named a lease no
    │                                         longer held (cluster placement): nothing written
    └── MembershipLost                        this instance's registration expired, is gone,
                                              or it drains: it may take no user
"""

from __future__ import annotations


class PersistenceError(Exception):
    """Base class of every error raised by an engine."""


class InvalidArgument(PersistenceError, ValueError):
    """An argument or setting the engine cannot take (a negative sequence number, text
    PostgreSQL cannot store, a missing data directory); nothing was written."""


class SerializationError(InvalidArgument):
    """A payload could not be stored as JSON; nothing was written."""


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


class JournalIntegrityError(PersistenceError):
    """The journal is not what recovery needs: a gap in sequence numbers, an unknown version."""


class AppendRefused(PersistenceError):
    """PostgreSQL refused the statement of one append (e.g. a tag too long to index); the
    other appends of its group-commit batch were written. Nothing of this one was."""


class SchemaError(PersistenceError):
    """The schema in the database does not fit this code (e.g. it was migrated by a newer
    version), or code asked for a table the schema does not have."""


class UnexpectedResponse(PersistenceError):
    """PostgreSQL answered in a way the statement rules out (no row where one is certain):
    a bug, or a server that is not the PostgreSQL the engine was written for."""


class StorageUnavailable(PersistenceError):
    """The storage could not be reached (server down, bad credentials, missing database).

    The message is one line naming host, port and database, never a password.
    """


class EmbeddedServerError(StorageUnavailable):
    """The embedded PostgreSQL could not be started, or its database not created.

    The message names the data directory and where the server's log is.
    """


class LeaseLost(PersistenceError):
    """A write or a release named a lease that is no longer held: another instance took the
    user over (a higher epoch), the lease was released, or its owner's registration expired.

    Nothing was written for this key. The activation that sees this must stop at once and
    must not answer from memory again: the user's owner is elsewhere now. Unlike
    :class:`ConcurrencyConflict`, recovering and retrying here would be wrong.
    """

    def __init__(self, key: str, owner: str, epoch: int, action: str = "write") -> None:
        super().__init__(
            f"{action} for {key!r} refused: instance {owner!r} no longer holds its lease at "
            f"epoch {epoch} (taken over, released, or the instance's registration expired)"
        )
        self.key = key
        self.owner = owner
        self.epoch = epoch


class MembershipLost(PersistenceError):
    """This instance may take no user: its registration expired, was removed, or it drains.

    An expired registration is never renewed again ("dead is dead"): the process must stop
    serving every user it hosts and register anew, under a new instance id.
    """

    def __init__(self, instance_id: str, reason: str) -> None:
        super().__init__(f"instance {instance_id!r} may take no user: {reason}")
        self.instance_id = instance_id
        self.reason = reason
