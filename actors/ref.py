"""Actor references: the only handle the outside world has on an actor.

A ref is compared by identity: an actor spawned again under the same name gets a new ref,
and the old one keeps pointing at the stopped incarnation (messages to it are dead letters).
"""

from __future__ import annotations

from asyncio import Future
from typing import TYPE_CHECKING, Any

from actors.errors import ActorCrashed, ActorNotFound, QueryTimeout

if TYPE_CHECKING:
    from actors.cell import Cell


class ActorRef:
    """The address of an actor: hand it to ``dispatch``, ``query``, ``stop`` or ``spawn``."""

    __slots__ = ("__weakref__", "name", "path")

    name: str
    path: str

    def _tell(self, msg: object, sender: ActorRef | None) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path}>"


class CellRef(ActorRef):
    """The ref of a spawned actor; it delivers into the actor's mailbox."""

    __slots__ = ("_cell",)

    def __init__(self, cell: Cell) -> None:
        self._cell = cell
        self.name = cell.name
        self.path = cell.path

    def __repr__(self) -> str:
        return f"<ActorRef {self.path}>"

    def _tell(self, msg: object, sender: ActorRef | None) -> None:
        cell = self._cell
        if cell.accepting:
            cell.mailbox.append((msg, sender))
            if cell.waiter is not None:
                cell.wake()
        else:
            cell.system.dead_letter(self, msg, sender)


class ReplyRef(ActorRef):
    """The temporary ref a query hands out as ``ctx.sender``: the first reply settles it."""

    __slots__ = ("_target", "future", "msg", "timeout")

    def __init__(self, future: Future[Any], target: Cell, timeout: float) -> None:
        self.future = future
        self._target = target
        self.timeout = timeout
        self.msg: object = None
        self.name = "$query"
        self.path = target.query_path

    def __repr__(self) -> str:
        return f"<ReplyRef of a query to {self._target.path}>"

    def _tell(self, msg: object, sender: ActorRef | None) -> None:
        future = self.future
        if future.done():
            self._target.system.dead_letter(self, msg, sender)
        else:
            future.set_result(msg)

    def crashed(self, error: BaseException) -> None:
        """The query's message crashed an actor: fail the query at once."""
        if not self.future.done():
            self.future.set_exception(ActorCrashed(self._target.path, error))

    def fail(self, error: BaseException) -> None:
        """Fail the query with ``error`` (e.g. a refused cluster activation)."""
        if not self.future.done():
            self.future.set_exception(error)

    def expire(self) -> None:
        """No reply within the timeout: fail the query."""
        if not self.future.done():
            self.future.set_exception(QueryTimeout(self._target.path, self.timeout, self.msg))

    def not_found(self, path: str, detail: str = "is stopped") -> None:
        """The actor that should answer is gone: fail the query at once."""
        if not self.future.done():
            self.future.set_exception(ActorNotFound(path, detail))
