"""The context an actor's code receives: who it is, who sent the message, and its relatives."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Self

from actors.ref import ActorRef

if TYPE_CHECKING:
    from actors.cell import Cell
    from actors.system import ActorSystem


class Context:
    """What a handler sees of its actor (``ctx``).

    ``sender`` is the sender of the message being handled (the temporary reply ref for a
    query, None when it was dispatched without one). Everything else is read-only.
    A subclass (e.g. the persistent context) is built from the context the runtime passes in
    with :meth:`from_context`.
    """

    __slots__ = ("_cell", "sender")

    def __init__(self, cell: Cell, sender: ActorRef | None = None) -> None:
        self._cell = cell
        self.sender = sender

    @classmethod
    def from_context(cls, ctx: Context) -> Self:
        """A context of class ``cls`` for the same actor and sender as ``ctx``."""
        new = cls.__new__(cls)
        Context.__init__(new, ctx._cell, ctx.sender)
        return new

    def with_sender(self, sender: ActorRef | None) -> Self:
        """A copy of this context with another ``sender`` (for work that outlives a message)."""
        new = type(self).from_context(self)
        new.sender = sender
        return new

    @property
    def self(self) -> ActorRef:
        """The ref of this actor."""
        return self._cell.ref

    @property
    def parent(self) -> ActorRef | ActorSystem:
        """The parent's ref, or the system for a top-level actor."""
        return self._cell.parent.as_parent()

    @property
    def children(self) -> Mapping[str, ActorRef]:
        """The live children by name (read-only; a stopping child is no longer listed)."""
        return self._cell.children_view

    @property
    def name(self) -> str:
        return self._cell.name

    @property
    def path(self) -> str:
        """E.g. ``"contacts/alice"``: the system name, then each ancestor's name."""
        return self._cell.path

    @property
    def log(self) -> logging.Logger:
        """This actor's logger, ``actors.<path with / replaced by .>``."""
        return self._cell.log

    @property
    def system(self) -> ActorSystem:
        return self._cell.system

    @property
    def unprocessed(self) -> tuple[object, ...]:
        """While the actor stops: the messages left in its mailbox, in order; else empty."""
        return self._cell.unprocessed

    def reply(self, value: object) -> None:
        """Send ``value`` to the sender; with no sender it goes to the dead letters."""
        sender = self.sender
        if sender is None:
            self._cell.system.dead_letter(None, value, self._cell.ref)
        else:
            sender._tell(value, self._cell.ref)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._cell.path}>"
