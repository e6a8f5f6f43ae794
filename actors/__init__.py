"""An asyncio actor runtime with persistent actors: spawn, dispatch, query, supervise, persist."""

from actors.behaviour import Behaviour
from actors.context import Context
from actors.errors import (
    ActorCrashed,
    ActorError,
    ActorNotFound,
    DuplicateActorName,
    InvalidActorName,
    QueryTimeout,
    SystemNotRunning,
)
from actors.metrics import Metrics, Timings
from actors.policies import reset_with_backoff, restart_budget
from actors.ref import ActorRef
from actors.supervision import Decision, Escalation
from actors.system import (
    ActorSystem,
    DeadLetter,
    dispatch,
    query,
    spawn,
    spawn_behaviour,
    spawn_stateless,
    stop,
)

# --- persistent layer (owned by the "persistent" helper) ------------------------------
# PersistentActor, PersistentContext, spawn_persistent, spawn_actor, DurableStateActor,
# Upcasters, JournalIntegrityError: imported and listed in __all__ here by that helper.
# --- end of persistent layer -----------------------------------------------------------

__all__ = [
    "ActorCrashed",
    "ActorError",
    "ActorNotFound",
    "ActorRef",
    "ActorSystem",
    "Behaviour",
    "Context",
    "DeadLetter",
    "Decision",
    "DuplicateActorName",
    "Escalation",
    "InvalidActorName",
    "Metrics",
    "QueryTimeout",
    "SystemNotRunning",
    "Timings",
    "dispatch",
    "query",
    "reset_with_backoff",
    "restart_budget",
    "spawn",
    "spawn_behaviour",
    "spawn_stateless",
    "stop",
]
