"""Seeded random command sequences: replaying the stored payloads, from scratch or from a
snapshot plus the tail, always rebuilds exactly the live state, and that state is the one an
independent model (a plain dict, updated by the test's own rules, never by ``evolve``) holds."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import pytest

from contacts_cli.domain import (
    ContactCreated,
    ContactRemoved,
    ContactsState,
    ContactUpdated,
    CreateContact,
    DomainError,
    ImportContacts,
    ImportRow,
    RemoveContact,
    UpdateContact,
    decide,
    event_from_payload,
    event_to_payload,
    evolve,
    list_contacts,
    replay,
    state_from_snapshot,
    state_to_snapshot,
)
from contacts_cli.domain.decide import Command, Event
from tests.domain.conftest import at

NAMES = ["Ada", "bob", "Émile", "zoë", "Grace", "ada", "李"]


def random_command(rng: random.Random, state: ContactsState) -> Command:
    ids = [c.id for c in state]
    kind = rng.choice(["create", "create", "update", "remove", "import"] if ids else ["create"])
    if kind == "create":
        return CreateContact({"name": rng.choice(NAMES), "emails": [f"u{rng.randrange(9)}@x.org"]})
    if kind == "update":
        patch = rng.choice(
            [
                {"name": rng.choice(NAMES)},
                {"notes": None},
                {"notes": "n"},
                {"emails": []},
                {"labels": ["a", "b"]},
                {"emails": [f"u{rng.randrange(9)}@x.org"]},
            ]
        )
        return UpdateContact(rng.choice(ids), patch, rng.choice([None, 1, 2, 3]))
    if kind == "remove":
        return RemoveContact(rng.choice(ids))
    rows = [
        ImportRow(i, {"name": rng.choice(NAMES), "emails": [f"u{rng.randrange(9)}@x.org"]})
        for i in range(rng.randrange(1, 6))
    ]
    return ImportContacts(rows, rng.choice(["skip", "update", "create"]))


# -- the independent model: id -> plain dict, by the rules a user reads in the docs ----------

Model = dict[str, dict[str, Any]]


def blank(name: str, emails: list[str]) -> dict[str, Any]:
    return {"name": name, "emails": emails, "notes": None, "labels": [], "version": 1}


def project(state: ContactsState) -> Model:
    """The domain's state in the model's shape (fields the commands never touch must stay
    empty)."""
    out: Model = {}
    for c in state:
        assert (c.phones, c.company, c.title, c.address, c.birthday, c.card) == (
            (), None, None, None, None, None)
        out[c.id] = {"name": c.name, "emails": list(c.emails), "notes": c.notes,
                     "labels": list(c.labels), "version": c.version}
    return out


def conflicts(model: Model, command: Command) -> bool:
    """The model's only reason to refuse a command: an expected version that is not current."""
    if isinstance(command, UpdateContact | RemoveContact):
        expected = command.expected_version
        return expected is not None and expected != model[command.contact_id]["version"]
    return False


def model_apply(model: Model, command: Command, events: list[Event]) -> None:
    """Update ``model`` for an accepted ``command``; the events give only the new ids (and
    which of several contacts sharing an email an import row matched), checked against it."""
    if isinstance(command, CreateContact):
        [created] = events
        assert isinstance(created, ContactCreated) and created.contact_id not in model
        model[created.contact_id] = blank(command.fields["name"], list(command.fields["emails"]))
    elif isinstance(command, UpdateContact):
        contact = model[command.contact_id]
        changes = {k: v for k, v in command.patch.items() if contact[k] != v}
        contact.update(changes)
        if changes:
            contact["version"] += 1
        assert len(events) == (1 if changes else 0)
    elif isinstance(command, RemoveContact):
        del model[command.contact_id]
        assert [type(e) for e in events] == [ContactRemoved]
    else:
        assert isinstance(command, ImportContacts)
        pending = iter(events)
        for row in command.rows:
            name, [email] = row.data["name"], row.data["emails"]
            sharing = [i for i, c in model.items() if email in c["emails"]]
            if command.policy == "create" or not sharing:
                created = next(pending)
                assert isinstance(created, ContactCreated) and created.contact_id not in model
                model[created.contact_id] = blank(name, [email])
            elif command.policy == "update" and model[sharing[0]]["name"] != name:
                updated = next(pending)
                assert isinstance(updated, ContactUpdated) and updated.contact_id in sharing
                model[updated.contact_id]["name"] = name  # the email is already there
                model[updated.contact_id]["version"] += 1
        assert next(pending, None) is None


@pytest.mark.parametrize("seed", range(20))
def test_replay_and_snapshot_rebuild_the_same_state(seed: int) -> None:
    rng = random.Random(seed)
    state = ContactsState()
    model: Model = {}
    journal: list[tuple[str, int, dict[str, object]]] = []
    snapshot_at = rng.randrange(5, 40)
    snapshot: dict[str, object] | None = None
    for step in range(60):
        command = random_command(rng, state)
        try:
            events = decide(
                state, command, at(step), lambda: str(uuid.UUID(int=rng.getrandbits(128)))
            )
        except DomainError:
            assert conflicts(model, command), command
            continue
        assert not conflicts(model, command), command
        model_apply(model, command, events)
        for event in events:
            journal.append(json.loads(json.dumps(event_to_payload(event))))
            evolve(state, event)
        if snapshot is None and len(journal) >= snapshot_at:
            snapshot = json.loads(json.dumps(state_to_snapshot(state)))
            snapshot_seq = len(journal)
    decoded = [event_from_payload(t, v, p) for t, v, p in journal]
    assert project(replay(decoded)) == model
    assert replay(decoded) == state
    if snapshot is not None:
        from_snapshot = replay(decoded[snapshot_seq:], state_from_snapshot(snapshot))
        assert from_snapshot == state
        assert list_contacts(from_snapshot, 1000).items == list_contacts(state, 1000).items
    for contact in state:
        for email in contact.emails:
            assert contact.id in state.ids_with_email(email)
