"""Seeded random command sequences: replaying the stored payloads, from scratch or from a
snapshot plus the tail, always rebuilds exactly the live state."""

from __future__ import annotations

import json
import random
import uuid

import pytest

from contacts_cli.domain import (
    ContactsState,
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
from contacts_cli.domain.decide import Command
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


@pytest.mark.parametrize("seed", range(20))
def test_replay_and_snapshot_rebuild_the_same_state(seed: int) -> None:
    rng = random.Random(seed)
    state = ContactsState()
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
            continue
        for event in events:
            journal.append(json.loads(json.dumps(event_to_payload(event))))
            evolve(state, event)
        if snapshot is None and len(journal) >= snapshot_at:
            snapshot = json.loads(json.dumps(state_to_snapshot(state)))
            snapshot_seq = len(journal)
    decoded = [event_from_payload(t, v, p) for t, v, p in journal]
    assert replay(decoded) == state
    if snapshot is not None:
        from_snapshot = replay(decoded[snapshot_seq:], state_from_snapshot(snapshot))
        assert from_snapshot == state
        assert list_contacts(from_snapshot, 1000).items == list_contacts(state, 1000).items
    for contact in state:
        for email in contact.emails:
            assert contact.id in state.ids_with_email(email)
