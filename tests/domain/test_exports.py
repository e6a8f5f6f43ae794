"""``contacts_cli.domain`` exports exactly its public names (httpx's test_exported_members).

Other packages import the domain only through this module, so a name dropped from it, or
a public name added without being exported, is caught here.
"""

from __future__ import annotations

import inspect
from types import ModuleType

import contacts_cli.domain as domain
from contacts_cli.domain import errors

PUBLIC_NAMES = [
    "CARD_VERSIONS",
    "CONTACT_CREATED_VERSION",
    "CONTACT_REMOVED_VERSION",
    "CONTACT_UPDATED_VERSION",
    "DUPLICATE_POLICIES",
    "EDITABLE_FIELDS",
    "EVENT_VERSIONS",
    "READ_ONLY_FIELDS",
    "UPCASTERS",
    "Card",
    "CardLine",
    "Command",
    "Contact",
    "ContactCreated",
    "ContactExists",
    "ContactNotFound",
    "ContactRemoved",
    "ContactUpdated",
    "ContactsState",
    "CreateContact",
    "DomainError",
    "DuplicatePolicy",
    "Event",
    "EventSchemaError",
    "FieldError",
    "HistoryEntry",
    "ImportContacts",
    "ImportPlan",
    "ImportRow",
    "NewId",
    "NewIdCollision",
    "Page",
    "RemoveContact",
    "RowOutcome",
    "RowStatus",
    "Steps",
    "UpdateContact",
    "ValidationError",
    "VersionConflict",
    "card_from_json",
    "card_to_json",
    "contact_from_dict",
    "contact_history",
    "contact_to_dict",
    "decide",
    "default_region",
    "event_from_payload",
    "event_to_payload",
    "evolve",
    "get_contact",
    "list_contacts",
    "normalise_birthday",
    "normalise_email",
    "normalise_phone",
    "parse_query",
    "plan_import",
    "replay",
    "search_contacts",
    "search_steps",
    "sorted_by_name",
    "state_as_of",
    "state_from_snapshot",
    "state_to_snapshot",
    "validate_card",
    "validate_contact_id",
    "validate_new",
    "validate_patch",
]


def test_all_public_members_are_exported_and_nothing_else() -> None:
    public = sorted(
        name
        for name, value in vars(domain).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
        and name != "annotations"
    )
    assert sorted(domain.__all__) == public


def test_the_public_names_are_pinned() -> None:
    assert domain.__all__ == PUBLIC_NAMES


def test_every_exported_name_resolves() -> None:
    for name in domain.__all__:
        assert getattr(domain, name) is not None


def test_every_domain_error_derives_from_domain_error() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if inspect.isclass(value) and issubclass(value, BaseException)
        and value.__module__ == errors.__name__
    ]
    assert classes, "errors.py defines no error classes"
    assert all(issubclass(cls, domain.DomainError) for cls in classes)
    assert {cls.__name__ for cls in classes} <= set(domain.__all__)
