"""Where a user's command runs: on this process's activation of the user, or on the instance
that hosts it (``docs/cluster.md``).

:class:`Activations` owns this process's actor system, its router and, on PostgreSQL, its
membership in the cluster (:class:`~contacts_cli.service.cluster.ClusterMember`), whose
placement the system runs its actors under: a user's actor is active here only while this
instance holds the user's lease. :meth:`Activations.ask` sends a command to the user's actor
here, or, when another instance hosts the user (``ActivationElsewhere``), makes the same call
there through :mod:`~contacts_cli.backends.forwarding`. Either way the answer comes from the
user's one activation: reads are never stale, writes never conflict.

When the registration is lost (a pause, the database cut off) the instance answers nothing
(503), stops its actors, registers anew and starts a fresh actor system.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from actors import (
    ActivationElsewhere,
    ActivationLost,
    ActorCrashed,
    ActorNotFound,
    ActorRef,
    ActorSystem,
    QueryTimeout,
    query,
)
from contacts_cli.accounts.store import AccountMessage, spawn_registry
from contacts_cli.backends.errors import Unavailable
from contacts_cli.backends.forwarding import (
    NotHostedHere,
    PeerBackend,
    PeerRefused,
    Peers,
    is_forwarded,
)
from contacts_cli.backends.translate import backend_error
from contacts_cli.service import messages
from contacts_cli.service.cluster import ClusterMember
from contacts_cli.service.router import LiveUsers, Resolve, spawn_router
from contacts_cli.service.settings import Settings
from persistence.engine import Engine
from persistence.placement import ClusterPlacement

log = logging.getLogger("contacts_cli.backends.activations")

_RESOLVE_ATTEMPTS = 5

FORWARD_MARGIN = 2.0
"""Seconds a forwarded call waits beyond the owner's own timeout, so the owner's 504 (not
ours) reaches the client."""

OWNER_RETRY_PAUSE = 0.25
"""Seconds between attempts to reach or replace an owner that does not answer."""

OWNER_PATIENCE_MARGIN = 1.0
"""Seconds beyond the TTL an unanswering owner is waited for: by then the database judges
it expired and this instance takes the user over."""

STOP_WITHIN = 10.0
"""Seconds the actors of a lost registration get to stop before they are abandoned."""

Forward = Callable[[PeerBackend], Awaitable[Any]]
"""The same call, made on the instance that hosts the user."""

CheckStorage = Callable[[], Awaitable[None]]
"""Raises ``Unavailable`` if the database does not answer (after a query timed out)."""

RefCache = weakref.WeakValueDictionary[str, ActorRef]
"""The refs of the actors resolved so far, by name; an entry lives as long as its actor."""


class Activations:
    """This process's actor system and router, under its cluster membership if any."""

    def __init__(self, settings: Settings, engine: Engine, cluster: ClusterMember | None,
                 check_storage: CheckStorage) -> None:
        self.settings = settings
        self.engine = engine
        self.cluster = cluster
        self.system: ActorSystem | None = None
        self.router: ActorRef | None = None
        self.account_registry: ActorRef | None = None
        self.peers = Peers(
            self._instance_id, fallback_token=settings.api_token,
            timeout=settings.query_timeout + FORWARD_MARGIN,
            import_timeout=settings.import_chunk_timeout + FORWARD_MARGIN,
        )
        self._check_storage = check_storage
        # Weak: a running actor's ref is kept alive by its parent (the router), so a user's
        # ref goes once its actor stopped (passivated), and with it all that it reached.
        self._refs: RefCache = weakref.WeakValueDictionary()
        self._account_refs: RefCache = weakref.WeakValueDictionary()
        self._closed = False
        self._rejoining = False
        self._watcher: asyncio.Task[None] | None = None

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the actor system (and, in a cluster, watch for a lost registration)."""
        await self._start_system()
        if self.cluster is not None:
            self._watcher = asyncio.get_running_loop().create_task(self._rejoin_when_lost())

    async def _start_system(self) -> None:
        placement = None
        if self.cluster is not None:
            placement = ClusterPlacement(self.cluster.store, self.cluster.membership)
        system = ActorSystem("contacts", engine=self.engine, placement=placement)
        await system.__aenter__()
        try:
            self.router = spawn_router(system, self.settings)
            self.account_registry = spawn_registry(system, self.settings)
        except BaseException:
            await system.__aexit__(None, None, None)
            raise
        self.system = system

    async def _stop_system(self) -> None:
        system, self.system, self.router = self.system, None, None
        self.account_registry = None
        self._refs.clear()
        self._account_refs.clear()
        if system is not None:
            # Each user actor snapshots on its way out if it is far enough behind, releases
            # its lease, and the system waits for the snapshots in flight.
            await system.__aexit__(None, None, None)

    async def _rejoin_when_lost(self) -> None:
        """Whenever the registration is lost: refuse requests, stop every actor (their
        writes would be refused anyway), register anew, start afresh."""
        assert self.cluster is not None
        while True:
            reason = await self.cluster.lost()
            self._rejoining = True
            log.error("instance %s lost its registration (%s): stopping its actors and "
                      "joining again", self.cluster.instance_id, reason)
            self.peers.forget_all()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(STOP_WITHIN):
                    await self._stop_system()
            await self.cluster.rejoin()
            await self._start_system()
            self._rejoining = False
            log.warning("joined the cluster again as instance %s", self.cluster.instance_id)

    async def close(self) -> None:
        """Drain (take no new user), stop every actor (each finishes its current command
        and releases its user), leave the cluster."""
        if self._closed:
            return
        self._closed = True
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        try:
            if self.cluster is not None and not self._rejoining:
                await self.cluster.drain()
            await self._stop_system()
        finally:
            await self.leave()

    async def leave(self) -> None:
        """Deregister and close the peers' connections (also after a failed start)."""
        try:
            if self.cluster is not None:
                await self.cluster.leave()
        finally:
            await self.peers.close()

    def _instance_id(self) -> str:
        return self.cluster.instance_id if self.cluster is not None else "standalone"

    def check_serving(self) -> None:
        """Raise :class:`Unavailable` unless this process may answer for its users now."""
        if self._closed:
            raise Unavailable("the contacts service is shutting down")
        if self._rejoining or (self.cluster is not None and not self.cluster.serving()):
            raise Unavailable("this instance lost its place in the cluster (paused, or cut "
                              "off from the database) and is joining again; retry")

    # -- asking ------------------------------------------------------------------------------

    async def ask(self, user: str, message: object, seconds: float,
                  forward: Forward | None = None) -> Any:
        """Send ``message`` to ``user``'s actor and return its reply (raising its failure);
        if the actor is active on another instance, make the call there with ``forward``.

        An owner that refuses connections may be dead: the activation is retried every
        :data:`OWNER_RETRY_PAUSE` until the database lets this instance take the user over
        (after the owner's TTL), then the call fails with :class:`Unavailable`."""
        self.check_serving()
        if forward is None or is_forwarded():
            return await self._ask_here(user, message, seconds)
        if (address := self.peers.owner_of(user)) is not None:
            with contextlib.suppress(NotHostedHere, PeerRefused):
                return await self._forward(user, address, forward)
        patience = time.monotonic() + self.settings.cluster_ttl + OWNER_PATIENCE_MARGIN
        while True:
            try:
                return await self._ask_here(user, message, seconds)
            except ActivationElsewhere as where:
                if where.address is not None:
                    with contextlib.suppress(NotHostedHere, PeerRefused):
                        return await self._forward(user, where.address, forward)
                if time.monotonic() >= patience:
                    raise Unavailable(
                        f"user {user!r} is active on instance {where.owner} "
                        f"({where.address or 'an in-process command'}), which does not "
                        "answer; retry shortly") from None
            await asyncio.sleep(OWNER_RETRY_PAUSE)
            self.check_serving()

    async def _forward(self, user: str, address: str, forward: Forward) -> Any:
        """Make the call on the instance at ``address``; forget it as the owner if it does
        not host the user any more or does not accept connections (the caller asks the
        database again)."""
        self.peers.learn(user, address)
        try:
            result = await forward(self.peers.peer(address))
        except (NotHostedHere, PeerRefused):
            self.peers.forget(user)
            self.peers.refused += 1
            raise
        self.peers.forwarded += 1
        return result

    async def _ask_here(self, user: str, message: object, seconds: float) -> Any:
        """The call on this instance's activation of ``user`` (activating it if need be).

        Raises ``ActivationElsewhere`` when another live instance holds the user; a request
        forwarded here answers :class:`NotHostedHere` then (no second hop)."""
        for attempt in range(_RESOLVE_ATTEMPTS):
            if attempt:
                await asyncio.sleep(0.01 * attempt)  # let a stopping actor leave the router
            ref = await self.resolve(user)
            try:
                reply = await self.query(ref, message, seconds)
            except ActorNotFound:
                # The actor passivated (or was stopped by supervision) since we resolved it;
                # nothing was handled, so asking the router again is safe.
                _drop(self._refs, user, ref)
                continue
            except ActivationElsewhere as where:
                _drop(self._refs, user, ref)
                if is_forwarded():
                    raise NotHostedHere(
                        f"user {user!r} is active on instance {where.owner}, not here; "
                        "retry") from None
                raise
            except ActivationLost:
                # Another instance took the user over (this one was paused or cut off):
                # nothing of this command was written; ask again, which finds the owner.
                _drop(self._refs, user, ref)
                self.check_serving()
                continue
            if isinstance(reply, messages.Failed):
                raise reply.error
            self.peers.forget(user)
            return reply
        raise Unavailable(f"the actor of user {user!r} keeps stopping; see the server log")

    async def ask_account(self, name: str, message: AccountMessage) -> Any:
        """Send ``message`` to the actor of the account ``name`` here and return its reply.

        Accounts are durable-state actors, not placed in the cluster: each instance may
        host one, and the state's revision check refuses a stale write."""
        self.check_serving()
        for attempt in range(_RESOLVE_ATTEMPTS):
            if attempt:
                await asyncio.sleep(0.01 * attempt)  # let a stopping actor leave the router
            ref = await self._resolve_in(self.account_registry, self._account_refs, name)
            try:
                reply = await self.query(ref, message, self.settings.query_timeout)
            except ActorNotFound:
                _drop(self._account_refs, name, ref)
                continue
            if isinstance(reply, messages.Failed):
                raise reply.error
            return reply
        raise Unavailable(f"the actor of account {name!r} keeps stopping; see the server log")

    async def resolve(self, user: str) -> ActorRef:
        """The actor of ``user`` in this process (spawned by the router if need be; its
        activation may still be refused: queries then raise ``ActivationElsewhere``)."""
        return await self._resolve_in(self.router, self._refs, user)

    async def _resolve_in(self, router: ActorRef | None, refs: RefCache,
                          name: str) -> ActorRef:
        """The child ``router`` runs for ``name``, remembered in ``refs``."""
        ref = refs.get(name)
        if ref is None:
            if router is None:
                raise Unavailable("the contacts service is starting or stopping")
            ref = await self.query(router, Resolve(name), self.settings.query_timeout)
            refs[name] = ref
        return ref

    async def query(self, ref: ActorRef, message: object, seconds: float) -> Any:
        """``query`` with the runtime's errors translated (a refused or lost activation is
        raised as itself, for :meth:`ask` to act on)."""
        try:
            return await query(ref, message, seconds)
        except QueryTimeout as timeout:
            await self._check_storage()
            raise backend_error(timeout) from None
        except ActorCrashed as crashed:
            if isinstance(crashed.error, ActivationElsewhere | ActivationLost):
                raise crashed.error from None
            raise backend_error(crashed) from crashed.error

    async def live_users(self) -> list[str]:
        """The users whose actor is in memory here."""
        self.check_serving()
        if self.router is None:
            raise Unavailable("the contacts service is starting or stopping")
        users: list[str] = await self.query(self.router, LiveUsers(),
                                            self.settings.query_timeout)
        return users


def _drop(refs: RefCache, name: str, ref: ActorRef) -> None:
    """Forget ``ref`` for ``name`` (it stopped), unless a newer one took its place."""
    if refs.get(name) is ref:
        del refs[name]
