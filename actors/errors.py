"""The errors the actor runtime raises: one vocabulary, every class derives from ActorError.

::

    ActorError
    ├── ActorNotFound (LookupError)       the target actor is stopped or stopping
    ├── QueryTimeout (TimeoutError)       no reply within the query's timeout
    ├── ActorCrashed                      the queried message crashed the actor
    ├── InvalidActorName (ValueError)     a name breaks the naming rule
    ├── DuplicateActorName (ValueError)   the parent has a live child of that name
    ├── SystemNotRunning (RuntimeError)   the system is not entered yet, or shut down
    ├── NoEngineConfigured (RuntimeError) a persistent actor in a system without an engine
    ├── SnapshotRefused                   no snapshot of a state that may not match the journal
    └── ActorUsageError (RuntimeError)    the runtime was called against its rules (a bug
        │                                 in the calling code, never a transient condition)
        ├── PersistInProgress             persist while another persist is in flight
        ├── CalledDuringRecovery          persist or snapshot while replaying
        ├── ActorNotStarted               persistence used before the actor started
        └── ShutdownFromInside            an actor shutting down its own system

The builtin in parentheses is a second base, so ``except LookupError`` and the like keep
working. Errors of the storage layer (``persistence.errors``) pass through unchanged: the
runtime does not wrap an engine's failure, it reacts to it (recover, supervise).
"""

from __future__ import annotations


class ActorError(Exception):
    """Base class of every error raised by the actor runtime."""


class ActorNotFound(ActorError, LookupError):
    """The target actor is stopped (or stopping), so it will never handle the message.

    Raised by :func:`~actors.query` at once, never after the timeout, and used to reject the
    pending queries of an actor when it stops.
    """

    def __init__(self, path: str, detail: str = "is stopped") -> None:
        super().__init__(f"actor {path!r} {detail}")
        self.path = path


class QueryTimeout(ActorError, TimeoutError):
    """No reply to a query arrived within its timeout."""

    def __init__(self, path: str, timeout: float, msg: object) -> None:
        super().__init__(
            f"no reply from actor {path!r} within {timeout:g}s to a {type(msg).__qualname__} query"
        )
        self.path = path
        self.timeout = timeout


class ActorCrashed(ActorError):
    """The message of a query crashed the actor; ``error`` is what the handler raised."""

    def __init__(self, path: str, error: BaseException) -> None:
        super().__init__(f"actor {path!r} crashed handling the query: {error!r}")
        self.path = path
        self.error = error


class InvalidActorName(ActorError, ValueError):
    """An actor (or system) name breaks the naming rule; the message says which rule."""


class DuplicateActorName(ActorError, ValueError):
    """The parent already has a live child of that name."""

    def __init__(self, parent_path: str, name: str) -> None:
        super().__init__(f"actor {parent_path!r} already has a child named {name!r}")
        self.parent_path = parent_path
        self.name = name


class SystemNotRunning(ActorError, RuntimeError):
    """The actor system was not entered with ``async with`` yet, or it has been shut down."""


class NoEngineConfigured(ActorError, RuntimeError):
    """A persistent or durable-state actor started in a system created without an engine."""


class SnapshotRefused(ActorError):
    """A snapshot was not taken because the state may not match the journal (after a write
    whose outcome is unknown); handed to ``on_snapshot_failure``, the actor recovers first."""


class ActorUsageError(ActorError, RuntimeError):
    """The runtime was called in a way its rules forbid: a bug in the calling code."""


class PersistInProgress(ActorUsageError):
    """``persist`` was called while another persist of the same actor was still in flight."""


class CalledDuringRecovery(ActorUsageError):
    """``persist`` or ``snapshot`` was called while the actor replays its journal."""


class ActorNotStarted(ActorUsageError):
    """Persistence was used before the actor's ``started`` (its recovery) ran."""


class ShutdownFromInside(ActorUsageError):
    """An actor tried to shut down its own system, which would wait for the actor itself."""
