"""An asyncio actor runtime with persistent actors: spawn, dispatch, query, supervise, persist.

``__all__`` is the public API (pinned by ``tests/actors/test_exports.py``): what an
application needs to write, run and supervise actors, persistent or not, and to choose when
they snapshot. Everything else is importable from its module for those who extend the
runtime (``actors.errors`` holds the whole error hierarchy, ``actors.snapshots`` the
snapshot path).
"""

from actors.behaviour import Behaviour
from actors.context import Context
from actors.durable_state import DurableStateActor, DurableStateContext
from actors.errors import (
    ActivationElsewhere,
    ActivationLost,
    ActorCrashed,
    ActorError,
    ActorNotFound,
    ActorUsageError,
    ConflictPersists,
    DuplicateActorName,
    InvalidActorName,
    NoEngineConfigured,
    QueryTimeout,
    SnapshotRefused,
    SystemNotRunning,
)
from actors.metrics import Metrics, Timings
from actors.persistent import PersistentActor, spawn_actor
from actors.persistent_context import PersistentContext
from actors.persistent_functional import spawn_persistent
from actors.placement import Elsewhere, Placement
from actors.policies import reset_with_backoff, restart_budget
from actors.recovery import RecoveryReport
from actors.ref import ActorRef
from actors.snapshot_strategies import (
    Amortised,
    AnyOf,
    Every,
    LastSnapshot,
    SnapshotStrategy,
    When,
)
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
from persistence.errors import JournalIntegrityError

__all__ = [
    "ActivationElsewhere",
    "ActivationLost",
    "ActorCrashed",
    "ActorError",
    "ActorNotFound",
    "ActorRef",
    "ActorSystem",
    "ActorUsageError",
    "Amortised",
    "AnyOf",
    "Behaviour",
    "ConflictPersists",
    "Context",
    "DataclassEvents",
    "DeadLetter",
    "Decision",
    "DuplicateActorName",
    "DurableStateActor",
    "DurableStateContext",
    "Elsewhere",
    "EncodedEvent",
    "Escalation",
    "Every",
    "InvalidActorName",
    "JournalIntegrityError",
    "JsonEvents",
    "LastSnapshot",
    "Metrics",
    "NoEngineConfigured",
    "PersistentActor",
    "PersistentContext",
    "Placement",
    "QueryTimeout",
    "RecoveryReport",
    "SnapshotRefused",
    "SnapshotStrategy",
    "SystemNotRunning",
    "Timings",
    "Upcasters",
    "When",
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
