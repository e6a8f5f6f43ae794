"""The errors the actor runtime raises; each names the actor path it concerns."""

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
