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
    ├── ActivationElsewhere               cluster placement: another live instance holds
    │                                     the actor's lease; ask it (``address``)
    ├── ActivationLost                    cluster placement: this instance lost the actor's
    │                                     lease or stopped serving; nothing was answered
    │                                     from memory
    ├── ConflictPersists                  a command met a concurrency conflict again after
    │                                     the actor recovered and re-ran it once
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


class ActivationElsewhere(ActorError):
    """The persistent actor is active on another live instance (it holds the lease), so it
    was not activated here; every query to this activation fails with this, at once.

    ``owner`` is that instance's id, ``address`` where it takes forwarded requests (``None``:
    it takes none, e.g. a short ``contacts --local`` command: retry soon), ``draining`` that
    it is shutting down (its users will be free shortly). See ``actors/placement.py``.
    """

    def __init__(
        self, persistence_id: str, owner: str, address: str | None, *, draining: bool = False
    ) -> None:
        where = f"at {address}" if address is not None else "which takes no forwarded request"
        super().__init__(
            f"{persistence_id!r} is active on instance {owner!r} {where}"
            + (" (draining)" if draining else "")
        )
        self.persistence_id = persistence_id
        self.owner = owner
        self.address = address
        self.draining = draining


class ActivationLost(ActorError):
    """This instance no longer holds the persistent actor's lease (taken over after its
    registration expired, or the instance stopped serving): the actor stopped without
    answering from memory. The query may be retried: the next activation, here or on the
    new owner, recovers from the journal."""

    def __init__(self, persistence_id: str, reason: str) -> None:
        super().__init__(f"activation of {persistence_id!r} lost: {reason}")
        self.persistence_id = persistence_id
        self.reason = reason


class ConflictPersists(ActorError):
    """A command met a :class:`~persistence.errors.ConcurrencyConflict` although the actor
    had just recovered from the journal and re-run it: another writer keeps appending to the
    same persistence id. Nothing of the command was written; ``error`` is the last conflict."""

    def __init__(self, persistence_id: str, error: BaseException) -> None:
        super().__init__(
            f"{persistence_id!r}: another writer appended again while the command was re-run "
            f"after recovery ({error}); nothing was written, retry later"
        )
        self.persistence_id = persistence_id
        self.error = error


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
