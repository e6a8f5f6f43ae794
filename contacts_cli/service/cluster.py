"""This process's instance in the cluster: its registration, its renewals, and a new one when
the old one is lost (see ``docs/cluster.md``).

Every process that activates users on a PostgreSQL journal is an *instance*: a ``contacts
serve`` (or each worker of one), and every in-process CLI command (``contacts --local``).
:class:`ClusterMember` registers it in the placement store with the address others forward
to (``None`` for a CLI command: it takes no forwarded request), renews the registration in
the background (:class:`~persistence.placement.Membership`), and leaves on the way out:
drain (take no new user), the caller passivates its actors (each releases its lease), then
deregister (whatever is left is released, the row removed).

Lost is final for one registration ("dead is dead"): when a renewal comes too late the
instance stops serving at once, and :meth:`ClusterMember.rejoin` registers a *new* instance,
retrying with a back-off while the database cannot be reached. The caller rebuilds its
activations on the new registration; requests meanwhile are refused (503), never answered
from the old memory.

The figures ``/metrics``, ``/api/stats`` and ``contacts cluster status`` show come from
:meth:`ClusterMember.figures`, read from the database at most once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from contacts_cli.service.settings import Settings
from persistence.errors import PersistenceError
from persistence.placement import ClusterStatus, Membership, PlacementStore
from persistence.postgres.config import PostgresConfig

log = logging.getLogger("contacts_cli.cluster")

LEAVE_WITHIN = 5.0
"""Seconds the way out may spend on the database (drain, deregister). If it cannot, the
registration simply expires after its TTL: nothing hangs, nothing leaks for longer."""

REJOIN_BACKOFF = (0.2, 5.0)
"""First and longest pause between attempts to register anew while the database is away."""

FIGURES_FRESH_FOR = 1.0
"""Seconds the cluster's figures are reused between scrapes (one status query at most)."""


@dataclass(frozen=True, slots=True)
class InstanceRole:
    """How this process takes part: where others reach it and how long it stays live."""

    address: str | None
    ttl: float
    renew_every: float | None
    name: str
    """``application_name`` of its placement connections (seen in ``pg_stat_activity``)."""

    @classmethod
    def server(cls, settings: Settings, address: str | None = None) -> InstanceRole:
        """A ``contacts serve`` instance reached at ``address`` (default: the advertised one)."""
        return cls(address or settings.advertised_address, settings.cluster_ttl,
                   settings.cluster_renew_every, "contacts-serve")

    @classmethod
    def command(cls, settings: Settings) -> InstanceRole:
        """An in-process CLI command: takes no forwarded request, short TTL."""
        return cls(None, settings.cluster_local_ttl, None, "contacts-cli")


class ClusterMember:
    """One instance's registration and renewals, and a new registration after a loss.

    Open with :meth:`join`; :attr:`membership` is the current registration's renewal loop
    (what the actor system's placement asks ``serving()``); :meth:`lost` waits until it is
    lost; :meth:`rejoin` registers anew; :meth:`leave` is the graceful way out.
    """

    def __init__(self, store: PlacementStore, role: InstanceRole, membership: Membership) -> None:
        self.store = store
        self.role = role
        self.membership = membership
        self.rejoins = 0
        self._left = False
        self._figures: tuple[float, dict[str, Any]] | None = None

    @classmethod
    async def join(cls, config: PostgresConfig, role: InstanceRole, *,
                   migrated: bool = False) -> ClusterMember:
        """Start a placement store on ``config``'s schema and register this instance
        (``migrated``: a started engine on that schema has migrated it already)."""
        store = PlacementStore(config, application_name=role.name)
        await store.start(migrated=migrated)
        try:
            membership = await cls._register(store, role)
        except BaseException:
            await store.close()
            raise
        return cls(store, role, membership)

    @staticmethod
    async def _register(store: PlacementStore, role: InstanceRole) -> Membership:
        registration = await store.register(role.address, ttl=role.ttl)
        membership = Membership(store, registration, renew_every=role.renew_every)
        membership.start()
        log.info("instance %s joined the cluster (address %s, ttl %g s)",
                 registration.instance_id, role.address or "none", role.ttl)
        return membership

    @property
    def instance_id(self) -> str:
        return self.membership.instance_id

    def serving(self) -> bool:
        """Whether this instance may answer for its users now (no I/O)."""
        return self.membership.serving()

    async def lost(self) -> str:
        """Wait until the current registration is lost; the reason."""
        await self.membership.lost.wait()
        return self.membership.reason or "lost"

    async def rejoin(self) -> None:
        """Register a new instance (the old one stays dead), retrying while the database
        cannot be reached; cancel the call to give up."""
        await self.membership.stop()
        pause, longest = REJOIN_BACKOFF
        while True:
            try:
                self.membership = await self._register(self.store, self.role)
            except PersistenceError as exc:
                log.warning("cannot register anew yet (%s); retrying in %g s", exc, pause)
                await asyncio.sleep(pause)
                pause = min(longest, pause * 2)
                continue
            self.rejoins += 1
            self._figures = None
            return

    async def drain(self) -> None:
        """Take no new user from now on; the users held stay here until released."""
        with contextlib.suppress(PersistenceError, TimeoutError):
            async with asyncio.timeout(LEAVE_WITHIN):
                await self.store.drain(self.instance_id)

    async def leave(self) -> None:
        """Deregister (releasing whatever lease is left), stop renewing, close the store.

        Bounded: if the database does not answer in time, the registration expires on its
        own after its TTL, and the users it still holds are taken over then. Only the first
        call does anything.
        """
        if self._left:
            return
        self._left = True
        try:
            async with asyncio.timeout(LEAVE_WITHIN):
                released = await self.store.deregister(self.instance_id)
            if released:
                log.info("instance %s left; released %d lease(s) still held",
                         self.instance_id, released)
        except (PersistenceError, TimeoutError) as exc:
            log.warning("instance %s could not deregister (%s); it expires in %g s",
                        self.instance_id, exc, self.role.ttl)
        finally:
            await self.membership.stop()
            await self.store.close()

    async def status(self) -> ClusterStatus:
        return await self.store.status()

    async def figures(self) -> dict[str, Any]:
        """The cluster's figures as this instance sees them, fresh within a second:
        ``instance_id``, ``address``, ``pid``, ``serving``, ``instances_live``,
        ``users_hosted_here`` (leases this instance holds), ``takeovers_last_hour`` (the
        whole cluster's), ``rejoins``."""
        now = time.monotonic()
        if self._figures is not None and now - self._figures[0] < FIGURES_FRESH_FOR:
            return {**self._figures[1], "serving": self.serving()}
        status = await self.store.status()
        me = next((i for i in status.instances if i.instance_id == self.instance_id), None)
        figures = {
            "instance_id": self.instance_id,
            "address": self.role.address,
            "pid": os.getpid(),
            "serving": self.serving(),
            "instances_live": sum(1 for i in status.instances if i.live),
            "users_hosted_here": me.users if me is not None else 0,
            "takeovers_last_hour": status.takeovers_last_hour,
            "rejoins": self.rejoins,
        }
        self._figures = (now, figures)
        return figures
