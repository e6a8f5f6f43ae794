"""The extension point of the runtime: what a cell runs for one actor.

A cell (``actors/cell.py``) owns the mailbox and calls these methods one at a time, never
concurrently, never re-entrantly. ``spawn``, ``spawn_stateless`` and ``spawn_persistent``
differ only in the ``Behaviour`` they hand to ``actors.system.spawn_behaviour``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actors.context import Context
    from actors.supervision import Decision


class Behaviour(ABC):
    """The life cycle of one actor: start, receive messages, crash, reset, stop."""

    async def started(self, ctx: Context) -> None:
        """Run before the first message and after every reset (recovery goes here).

        Messages arriving meanwhile wait in the mailbox, in order. An exception raised here
        is a fault handled by supervision exactly like one raised by :meth:`receive`, with
        ``msg`` set to ``None``.
        """

    @abstractmethod
    async def receive(self, msg: object, ctx: Context) -> None:
        """Handle one message."""

    def reset(self) -> None:
        """Forget all state, back to the initial one; :meth:`started` runs again next."""

    async def stopped(self, ctx: Context, unprocessed: list[object]) -> None:
        """Run once when the actor stops; ``unprocessed`` is what was left in the mailbox."""

    @abstractmethod
    async def on_crash(self, msg: object, error: BaseException, ctx: Context) -> Decision:
        """Decide what a fault while handling ``msg`` (``None`` in :meth:`started`) does."""
