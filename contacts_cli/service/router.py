"""The router actor: finds (or spawns) the persistent actor of a user and supervises it.

A user's actor is spawned on first use, named after the user id, and passivates (stops) after
``shutdown_after`` seconds without a message; the next request spawns it again, which recovers
its state from the latest snapshot and the journal. A user actor that keeps failing is reset
with exponential backoff until its restart budget is spent; then it escalates here and is
stopped, so the next request starts it afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actors import (
    ActorRef,
    Context,
    Decision,
    reset_with_backoff,
    restart_budget,
    spawn,
    spawn_actor,
)
from contacts_cli.service.actor import UserActor
from contacts_cli.service.ids import check_user_id
from contacts_cli.service.settings import Settings

CHILD_PREFIX = "user:"


def child_name(user_id: str) -> str:
    """The actor name of a user's actor (user ids may begin with '.' or '-'; names may not)."""
    return CHILD_PREFIX + user_id


@dataclass(frozen=True, slots=True)
class Resolve:
    """Ask for the actor of ``user_id``; the reply is its :class:`ActorRef`."""

    user_id: str


@dataclass(frozen=True, slots=True)
class LiveUsers:
    """Ask for the ids of the user actors currently in memory."""


class Router:
    """The router's behaviour; its state is only its children (kept by the runtime)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # One policy for every user actor: the policies keep their bookkeeping per actor
        # (per ref), and building two closures and two weak dictionaries per activation was
        # a twentieth of a cold start's time.
        self.on_crash_policy = restart_budget(
            settings.restart_budget, settings.restart_window, inner=reset_with_backoff()
        )

    def user_actor(self, user_id: str) -> UserActor:
        return UserActor(
            user_id,
            region=self.settings.default_region,
            snapshot_every=self.settings.snapshot_every,
            on_crash_policy=self.on_crash_policy,
        )

    def handle(self, state: Any, msg: object, ctx: Context) -> Any:
        if isinstance(msg, Resolve):
            user_id = check_user_id(msg.user_id)
            name = child_name(user_id)
            child = ctx.children.get(name)
            if child is None:
                child = spawn_actor(
                    ctx.self,
                    self.user_actor(user_id),
                    name,
                    shutdown_after=self.settings.shutdown_after,
                )
            ctx.reply(child)
        elif isinstance(msg, LiveUsers):
            ctx.reply(sorted(name[len(CHILD_PREFIX):] for name in ctx.children))
        return state

    def on_crash(self, msg: object, error: BaseException, ctx: Context) -> Decision:
        """A user actor escalated (its budget is spent): stop it; the router itself resumes."""
        if msg is None or not isinstance(msg, Resolve | LiveUsers):
            return Decision.STOP_CHILD
        ctx.log.error("router failed on %r: %r", msg, error)
        return Decision.RESUME


def spawn_router(parent: Any, settings: Settings, name: str = "users") -> ActorRef:
    """Spawn the router under ``parent`` (the actor system)."""
    router = Router(settings)
    return spawn(parent, router.handle, name, on_crash=router.on_crash)
