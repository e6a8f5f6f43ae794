"""An asyncio actor runtime with persistent actors: spawn, dispatch, query, supervise, persist."""

from actors.behaviour import Behaviour
from actors.context import Context

# --- persistent layer (owned by the "persistent" helper) ------------------------------
from actors.durable_state import DurableStateActor, DurableStateContext
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
from actors.persistent import (
    JournalIntegrityError,
    NoEngineConfigured,
    PersistentActor,
    PersistentContext,
    spawn_actor,
    spawn_persistent,
)
from actors.policies import reset_with_backoff, restart_budget
from actors.recovery import RecoveryReport
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
from actors.upcasting import DataclassEvents, EncodedEvent, JsonEvents, Upcasters

# --- end of persistent layer -----------------------------------------------------------

__all__ = [
    "ActorCrashed",
    "ActorError",
    "ActorNotFound",
    "ActorRef",
    "ActorSystem",
    "Behaviour",
    "Context",
    "DataclassEvents",
    "DeadLetter",
    "Decision",
    "DuplicateActorName",
    "DurableStateActor",
    "DurableStateContext",
    "EncodedEvent",
    "Escalation",
    "InvalidActorName",
    "JournalIntegrityError",
    "JsonEvents",
    "Metrics",
    "NoEngineConfigured",
    "PersistentActor",
    "PersistentContext",
    "QueryTimeout",
    "RecoveryReport",
    "SystemNotRunning",
    "Timings",
    "Upcasters",
    "dispatch",
    "query",
    "reset_with_backoff",
    "restart_budget",
    "spawn",
    "spawn_actor",
    "spawn_behaviour",
    "spawn_persistent",
    "spawn_stateless",
    "stop",
]
