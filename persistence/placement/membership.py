"""One instance's membership: renew the registration in time, and stop serving before the
database may hand this instance's users to others.

The process asks :meth:`Membership.serving` before it answers any request from an
activation's memory. After a pause (SIGSTOP, a long GC, a suspended VM) the monotonic clock
has moved on, so the first request after the pause already sees the deadline passed, even
before the renewal loop wakes. Writes do not depend on this: the fence refuses them in
their own transaction. This check is what keeps a zombie from serving stale *reads*.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from persistence.errors import StorageUnavailable
from persistence.placement.model import RENEW_FRACTION, Registration
from persistence.placement.store import PlacementStore

_log = logging.getLogger(__name__)


class Membership:
    """Renews ``registration`` every ``renew_every`` seconds (a third of its TTL unless
    given) until the registration is lost; then sets :attr:`lost` and calls ``on_lost``.

    Lost is final: the runtime stops every activation and registers a new instance.
    """

    def __init__(
        self,
        store: PlacementStore,
        registration: Registration,
        *,
        renew_every: float | None = None,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        self.registration = registration
        self.renew_every = renew_every if renew_every else registration.ttl * RENEW_FRACTION
        if self.renew_every <= 0:
            raise ValueError(f"renew_every must be positive, got {self.renew_every}")
        self.lost = asyncio.Event()
        self.reason: str | None = None
        self._store = store
        self._deadline = registration.local_deadline
        self._on_lost = on_lost
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def instance_id(self) -> str:
        return self.registration.instance_id

    def serving(self) -> bool:
        """Whether this instance may still answer for its users (a local check, no I/O)."""
        return not self.lost.is_set() and time.monotonic() < self._deadline

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._renew())

    async def stop(self) -> None:
        """Stop renewing. The flag ends the loop even if a cancellation is lost (Python 3.11's
        ``wait_for`` could drop one that met a heartbeat finishing at the same moment, and
        ``stop`` then waited for ever); the loop's timeout is ``asyncio.timeout``, which
        cannot."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _renew(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.renew_every)
            left = self._deadline - time.monotonic()
            if left <= 0:
                self._lose("renewal overdue: this process was paused or the database slow")
                return
            try:
                async with asyncio.timeout(left):
                    renewal = await self._store.heartbeat(self.instance_id)
            except (StorageUnavailable, TimeoutError) as exc:
                _log.warning("renewal of instance %s failed: %s", self.instance_id, exc)
                continue
            if not renewal.valid or renewal.local_deadline is None:
                self._lose("the registration expired in the database")
                return
            self._deadline = renewal.local_deadline

    def _lose(self, reason: str) -> None:
        self.reason = reason
        self.lost.set()
        _log.error("instance %s stops serving: %s", self.instance_id, reason)
        if self._on_lost is not None:
            self._on_lost(reason)
