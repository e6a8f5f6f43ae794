"""The user actor's snapshot payload: columnar (version 2) round trips exactly, keys included,
and snapshots written in the row-wise version 1 format still load."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from contacts_cli.domain import ContactCreated, ContactRemoved, ContactUpdated, contact_to_dict
from contacts_cli.domain.state import pack_column
from contacts_cli.service.actor import UserActor
from contacts_cli.service.envelope import Journaled
from contacts_cli.service.snapshot_codec import (
    _key_columns,
    decode_state,
    encode_state,
    encode_state_text,
)
from contacts_cli.service.user_state import KeyEntry, UserState
from persistence.errors import JournalIntegrityError

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
FIELDS = {"name": "", "emails": (), "phones": (), "company": None, "title": None,
          "address": None, "birthday": None, "notes": None, "labels": ()}


def sample_state() -> UserState:
    state = UserState()
    for i in range(250):
        fields = {**FIELDS, "name": f"Person {i}", "emails": (f"p{i}@example.org",) if i % 3
                  else (), "labels": ("a", "b") if i % 7 == 0 else (),
                  "company": "Acme" if i % 2 else None}
        key = f"import-abc#{i}" if i % 5 else (f"http-{i}" if i % 2 else None)
        state.apply(Journaled(ContactCreated(f"id-{i:04d}", fields, T0 + timedelta(
            seconds=i // 100)), key, "fp" if key and key.startswith("http") else None))
    state.apply(Journaled(ContactUpdated("id-0001", {"title": "Dr"}, T0 + timedelta(1)),
                          "import-def#1"))
    state.apply(Journaled(ContactRemoved("id-0005", T0 + timedelta(2))))
    return state


def test_text_and_dict_encodings_round_trip_contacts_and_keys() -> None:
    state = sample_state()
    text = asyncio.run(encode_state_text(list(state.contacts), list(state.keys.items())))
    for payload in (text, json.loads(json.dumps(encode_state(state)))):
        loaded = decode_state(payload)
        assert loaded.contacts == state.contacts
        assert list(loaded.keys.items()) == list(state.keys.items())
        assert loaded.contacts.ids_with_email("P1@EXAMPLE.ORG") == ["id-0001"]
    # the key of a removed contact still names it
    assert decode_state(text).keys["http-5"].contact_id == "id-0005"


def test_version_1_rows_still_load() -> None:
    state = sample_state()
    old = {
        "contacts": {"schema": 1, "contacts": [contact_to_dict(c) for c in state.contacts]},
        "keys": [[k, e.contact_id, e.fingerprint, e.at.isoformat(), e.outcome]
                 for k, e in state.keys.items()],
    }
    actor = UserActor("someone")
    loaded = actor.decode_snapshot(json.dumps(old), 1)  # type: ignore[arg-type]
    assert loaded.contacts == state.contacts
    assert loaded.keys == state.keys
    with pytest.raises(JournalIntegrityError, match="version 4"):
        actor.decode_snapshot(json.dumps(old), 4)  # type: ignore[arg-type]


def test_damaged_keys_fail_recovery_and_bad_values_fail_loudly_when_first_used() -> None:
    state = sample_state()
    payload = json.loads(json.dumps(encode_state(state)))
    assert isinstance(payload["keys"]["suffix"], list)
    for damage in ("n", "suffix", "prefixes"):
        damaged = json.loads(json.dumps(payload))
        if damage == "suffix":
            del damaged["keys"]["suffix"][0]
        else:
            del damaged["keys"][damage]
        with pytest.raises(ValueError):
            decode_state(damaged)
    bad_value = json.loads(json.dumps(payload))
    bad_value["keys"]["prefix"] = {"same": 99}  # no such prefix
    loaded = decode_state(bad_value)
    with pytest.raises(JournalIntegrityError, match="corrupt idempotency keys"):
        _ = loaded.keys


def _key_columns_by_row(keys: list[tuple[str, KeyEntry]], ids: list[str]) -> dict[str, object]:
    """The key columns as first built (one loop over the keys): the reference for their form."""
    position = {contact_id: index for index, contact_id in enumerate(ids)}
    prefixes: dict[str, int] = {}
    times: dict[datetime, int] = {}
    prefix, contact, suffix = [], [], []
    for key, entry in keys:
        cut = key.rfind("#") + 1
        prefix.append(prefixes.setdefault(key[:cut], len(prefixes)))
        rest = key[cut:]
        canonical = rest.isascii() and rest.isdigit() and rest[0] != "0" and len(rest) < 19
        suffix.append(int(rest) if canonical else rest)
        contact.append(position.get(entry.contact_id, entry.contact_id))
    return {
        "n": len(keys), "prefixes": list(prefixes), "prefix": pack_column(prefix),
        "suffix": pack_column(suffix), "contact": pack_column(contact),
        "fingerprint": pack_column([entry.fingerprint for _, entry in keys]),
        "at": pack_column([times.setdefault(entry.at, len(times)) for _, entry in keys]),
        "outcome": pack_column([entry.outcome for _, entry in keys]),
        "times": [t.isoformat() for t in times],
    }


def test_key_columns_are_those_of_the_row_by_row_reference() -> None:
    rng = random.Random(3)
    for _ in range(500):
        ids = [f"c{i}" for i in range(rng.randrange(30))]
        keys = [
            (rng.choice(["a#", "b#", "#", "x", "a#b#", "é#"])
             + rng.choice(["1", "01", "0", "", "12345678901234567890", "٣", "z", "7"]),
             KeyEntry(rng.choice([*ids, "gone"]), rng.choice([None, "fp"]),
                      T0 + timedelta(seconds=rng.randrange(3)),
                      rng.choice(["created", "updated"])))
            for _ in range(rng.randrange(40))
        ]
        assert json.dumps(_key_columns(keys, ids)) == json.dumps(_key_columns_by_row(keys, ids))
