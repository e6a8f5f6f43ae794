"""The public API of ``actors`` is exactly its ``__all__``: pinned here, so adding or
removing a name is a visible, deliberate change (in the style of httpx's test_exports)."""

from __future__ import annotations

from types import ModuleType

import actors

PUBLIC = [
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


def test_all_is_the_pinned_public_api() -> None:
    assert actors.__all__ == PUBLIC


def test_all_is_sorted() -> None:
    assert actors.__all__ == sorted(actors.__all__, key=lambda name: (name[0].islower(), name))


def test_every_public_name_of_the_package_is_exported() -> None:
    public = {
        name for name, value in vars(actors).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert public == set(actors.__all__)


def test_every_exported_error_derives_from_actor_error() -> None:
    errors = [
        value for name in actors.__all__
        if isinstance(value := getattr(actors, name), type) and issubclass(value, Exception)
    ]
    foreign = {actors.JournalIntegrityError}  # the storage layer's, passed through unchanged
    assert errors and all(issubclass(e, actors.ActorError) for e in errors if e not in foreign)


def test_every_error_class_of_the_runtime_derives_from_actor_error() -> None:
    from actors import errors

    classes = [
        value for value in vars(errors).values()
        if isinstance(value, type) and value.__module__ == errors.__name__
    ]
    assert len(classes) > 10
    assert all(issubclass(cls, errors.ActorError) for cls in classes)
