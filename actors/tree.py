"""The actor tree: what a parent (an actor's cell, or the system's root) knows of its children.

A child's name is taken from the moment it is spawned until it starts stopping; from then on
it is no longer listed in ``children`` (so a passivated actor's name can be spawned again at
once), but its parent still waits for it in ``stopping_children`` when stopping itself.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from actors.errors import DuplicateActorName
from actors.validation import validate_name

if TYPE_CHECKING:
    from actors.cell import Cell
    from actors.ref import ActorRef, CellRef
    from actors.supervision import PendingEscalation
    from actors.system import ActorSystem

_log = logging.getLogger("actors")


class Node(ABC):
    """A place in the tree that can have children."""

    __slots__ = (
        "_auto_names",
        "accepting",
        "children",
        "children_view",
        "path",
        "stopping_children",
        "system",
    )

    def __init__(self, system: ActorSystem, path: str) -> None:
        self.system = system
        self.path = path
        self.children: dict[str, CellRef] = {}
        self.children_view: Mapping[str, ActorRef] = MappingProxyType(self.children)
        self.stopping_children: set[Cell] = set()
        self._auto_names = 0
        self.accepting = False
        """Whether it takes messages and new children (False once stopping)."""

    @abstractmethod
    def as_parent(self) -> ActorRef | ActorSystem:
        """What ``ctx.parent`` shows the children."""

    @abstractmethod
    def receive_escalation(self, pending: PendingEscalation) -> None:
        """A child escalated a fault: decide its fate (never leave it suspended)."""

    def reserve_name(self, name: str | None) -> str:
        """A valid, free child name: ``name`` checked, or a fresh ``$<n>`` when None."""
        if name is None:
            self._auto_names += 1
            name = f"${self._auto_names}"
            while name in self.children:
                self._auto_names += 1
                name = f"${self._auto_names}"
            return name
        validate_name(name)
        if name in self.children:
            raise DuplicateActorName(self.path, name)
        return name

    def child_stopping(self, cell: Cell) -> None:
        """``cell`` started stopping: free its name, keep waiting for it."""
        if self.children.get(cell.name) is cell.ref:
            del self.children[cell.name]
        self.stopping_children.add(cell)

    def child_stopped(self, cell: Cell) -> None:
        self.stopping_children.discard(cell)

    async def stop_children(self) -> None:
        """Ask every child, listed or already stopping, to stop, and wait until all have."""
        children = [ref._cell for ref in self.children.values()]
        children.extend(self.stopping_children)
        for child in children:
            child.request_stop()
        waiting = [child.stopped_future for child in children if not child.stopped_future.done()]
        if waiting:
            await asyncio.wait(waiting)


class RootNode(Node):
    """The parent of the top-level actors: the system itself."""

    __slots__ = ()

    def __init__(self, system: ActorSystem) -> None:
        super().__init__(system, system.name)

    def as_parent(self) -> ActorSystem:
        return self.system

    def receive_escalation(self, pending: PendingEscalation) -> None:
        """Nobody above: the escalating actor is stopped, and that is logged."""
        _log.warning(
            "fault of %s escalated to the root of system %r: stopping it (%r)",
            pending.escalation.child.path,
            self.system.name,
            pending.escalation.error,
        )
        pending.settle_stop()
