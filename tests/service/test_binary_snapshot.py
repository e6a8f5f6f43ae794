"""The user actor's version-3 snapshot (MessagePack columns in the snapshot's blob): it
restores exactly the state the JSON versions restore, for generated contacts of every field
kind and for a large generated user; versions 1 and 2 still load; damage fails loudly."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.snapshots import BinarySnapshot, wrap_snapshot
from contacts_cli.backends.local import LocalBackend
from contacts_cli.domain import Card, CardLine, Contact, ContactsState, contact_to_dict
from contacts_cli.domain.card import CARD_VERSIONS
from contacts_cli.domain.snapshot_rows import COLUMNS, build_contacts
from contacts_cli.domain.state import iter_contact_columns
from contacts_cli.service.actor import UserActor
from contacts_cli.service.envelope import decode_journaled
from contacts_cli.service.ids import persistence_id
from contacts_cli.service.settings import Settings
from contacts_cli.service.snapshot_codec import (
    SNAPSHOT_VERSION,
    decode_snapshot,
    decode_state,
    encode_state_binary,
    encode_state_text,
)
from contacts_cli.service.user_state import KeyEntry, UserState
from persistence.errors import JournalIntegrityError
from tests.conftest import EngineFactory

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
optional_text = st.none() | text
texts = st.lists(text, max_size=3).map(tuple)
instants = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)
cards = st.builds(
    Card,
    st.sampled_from(CARD_VERSIONS),
    st.lists(st.builds(CardLine, text, texts, text), max_size=3).map(tuple),
)


@st.composite
def users(draw: st.DrawFn) -> UserState:
    """A user's contacts (every field kind, shared and distinct instants) and idempotency
    keys (import chunks' ``prefix#row``, HTTP keys, keys of contacts since removed)."""
    count = draw(st.integers(0, 40))
    shared = draw(instants)
    contacts = ContactsState()
    for i in range(count):
        created = draw(st.just(shared) | instants)
        contacts.put(Contact(
            f"id-{i:04d}", draw(text), draw(texts), draw(texts), draw(optional_text),
            draw(optional_text), draw(optional_text), draw(optional_text), draw(optional_text),
            draw(texts), created, draw(st.just(created) | instants), draw(st.integers(1, 2**40)),
            draw(st.none() | cards),
        ))
    ids = [c.id for c in contacts]
    keys = {}
    for n in range(draw(st.integers(0, 30))):
        key = draw(st.sampled_from([f"chunk#{n}", f"http-{n}", f"a#b#0{n}", f"é#{n}x"]))
        keys[key] = KeyEntry(
            draw(st.sampled_from([*ids, "removed-id"])), draw(st.none() | text),
            draw(st.just(shared) | instants), draw(st.sampled_from(["created", "updated"])),
        )
    return UserState(contacts, keys)


def binary(state: UserState) -> BinarySnapshot:
    """The snapshot as stored and loaded: envelope through JSON, blob as bytes."""
    encoded = asyncio.run(encode_state_binary(list(state.contacts), list(state.keys.items())))
    envelope, blob = wrap_snapshot(encoded, SNAPSHOT_VERSION, "snapshot")
    assert blob is not None
    return BinarySnapshot(blob, json.loads(json.dumps(envelope))["state"])


def from_json(state: UserState) -> UserState:
    """The state version 2 restores (the decoding this code had before version 3)."""
    text = asyncio.run(encode_state_text(list(state.contacts), list(state.keys.items())))
    return decode_state(json.loads(json.dumps(text)))


def fields(contact: Contact) -> list[tuple[str, object, type]]:
    """Every field with its value and type (``==`` alone equates 1 and 1.0, and instants in
    different zones)."""
    return [(name, getattr(contact, name), type(getattr(contact, name)))
            for name in contact.__struct_fields__]


def assert_same_state(restored: UserState, reference: UserState) -> None:
    assert restored.contacts == reference.contacts  # same contacts, same order
    assert [fields(c) for c in restored.contacts] == [fields(c) for c in reference.contacts]
    assert [(c.created_at.utcoffset(), c.updated_at.utcoffset()) for c in restored.contacts] == [
        (c.created_at.utcoffset(), c.updated_at.utcoffset()) for c in reference.contacts]
    assert list(restored.keys.items()) == list(reference.keys.items())


@settings(max_examples=60, deadline=None)
@given(users())
def test_version_3_restores_what_version_2_restores(state: UserState) -> None:
    restored = decode_snapshot(binary(state), 3, "someone")
    assert_same_state(restored, from_json(state))
    assert restored.contacts == state.contacts
    assert list(restored.keys.items()) == list(state.keys.items())


def large_user(count: int) -> UserState:
    """A user built as an import builds one: 5,000-row chunks sharing an instant, every
    row's key ``import#<row>``, some contacts updated and removed afterwards."""
    state = UserState()
    contacts = state.contacts
    for i in range(count):
        at = T0 + timedelta(seconds=i // 5000)
        contact = Contact(
            f"{i:08x}-0000-4000-8000-000000000000", f"Person {i:06d}",
            (f"person{i}@example.org",) if i % 10 else (),
            (f"+1 415 555 {i % 10000:04d}",) if i % 3 == 0 else (), f"Company {i % 500}",
            None, None, None, "note" if i % 11 == 0 else None,
            ("friends", "work") if i % 7 == 0 else (), at, at, 1,
            Card("4.0", (CardLine("name", (f"Person {i:06d}",), f"FN:Person {i}"),))
            if i % 1000 == 0 else None,
        )
        contacts.add(contact)
        state.keys[f"import#{i + 1}"] = KeyEntry(contact.id, f"fp{i}", at, "created")
    later = T0 + timedelta(days=1)
    for i in range(0, count, 97):
        old = contacts.get(f"{i:08x}-0000-4000-8000-000000000000")
        assert old is not None
        contacts.put(old.with_changes({"title": "Dr", "labels": ["x"]}, later))
    for i in range(5, count, 1001):
        contacts.discard(f"{i:08x}-0000-4000-8000-000000000000")
    return state


def test_a_large_user_restores_exactly() -> None:
    state = large_user(30_000)
    restored = decode_snapshot(binary(state), 3, "big")
    assert len(restored.contacts) == len(state.contacts) > 29_000
    assert_same_state(restored, from_json(state))
    assert restored.contacts.ids_with_email("PERSON1@example.org") == [
        "00000001-0000-4000-8000-000000000000"]


def test_contacts_built_from_columns_equal_those_built_by_their_constructor() -> None:
    """``build_contacts`` gives contacts equal (and hashing equal) to the constructor's,
    frozen like them."""
    assert Contact.__struct_fields__ == COLUMNS
    state = large_user(2_000)
    columns = dict(iter_contact_columns(list(state.contacts)))
    times = columns.pop("times")
    for name in ("created_at", "updated_at"):
        columns[name] = [times[i] for i in columns[name]]
    built = build_contacts([columns[name] for name in COLUMNS])
    reference = [Contact(*(getattr(c, name) for name in COLUMNS)) for c in state.contacts]
    assert built == reference
    assert [hash(c) for c in built] == [hash(c) for c in reference]
    with pytest.raises(AttributeError):
        built[0].name = "changed"  # type: ignore[misc]


def restored(state: UserState) -> UserState:
    return decode_snapshot(binary(state), 3, "someone")


def test_a_restart_builds_no_contact_until_one_is_needed() -> None:
    state = large_user(3_000)
    lazy = restored(state).contacts
    first = next(iter(state.contacts))
    assert len(lazy) == len(state.contacts)
    assert first.id in lazy and "nobody" not in lazy
    assert lazy._rows is not None and lazy._rows.built == {}  # nothing built yet
    assert lazy.get(first.id) == first
    assert lazy._rows is not None and list(lazy._rows.built) == [first.id]
    assert lazy.ordered_keys() == state.contacts.ordered_keys()  # from the name column
    assert lazy._rows is not None and list(lazy._rows.built) == [first.id]
    assert list(lazy) == list(state.contacts)  # builds them all
    assert lazy._rows is None


@pytest.mark.parametrize("seed", range(25))
def test_a_lazily_restored_state_behaves_as_the_eagerly_restored_one(seed: int) -> None:
    """Random reads and writes (as ``evolve`` makes them) on both, compared after each; the
    lazy one is fully built only when something reads every contact."""
    rng = random.Random(seed)
    state = large_user(rng.randrange(0, 400))
    eager, lazy = from_json(state).contacts, restored(state).contacts
    ids = [c.id for c in state.contacts] + ["never-existed"]
    later = T0 + timedelta(days=3)
    for step in range(rng.randrange(1, 60)):
        op = rng.choice(["get", "in", "len", "put", "add", "discard", "discard", "iterate",
                         "email", "order"] if step % 7 else ["get", "put", "discard"])
        target = rng.choice(ids)
        if op == "get":
            assert lazy.get(target) == eager.get(target)
        elif op == "in":
            assert (target in lazy) == (target in eager)
        elif op == "len":
            assert len(lazy) == len(eager)
        elif op == "put" and (current := eager.get(target)) is not None:
            changed = current.with_changes({"name": f"Renamed {step}", "emails": ["x@y.z"]},
                                           later)
            eager.put(changed)
            lazy.put(changed)
        elif op == "add":
            new = Contact(f"new-{step}", f"New {step}", (f"n{step}@example.org",),
                          created_at=later, updated_at=later)
            ids.append(new.id)
            eager.add(new)
            lazy.add(new)
            with pytest.raises(ValueError, match="existing contact"):
                lazy.add(new)
        elif op == "discard":
            assert lazy.discard(target) == eager.discard(target)
        elif op == "iterate" and rng.random() < 0.3:
            assert list(lazy) == list(eager)
        elif op == "email":
            assert lazy.ids_with_email("x@y.z") == eager.ids_with_email("x@y.z")
        elif op == "order":
            assert lazy.ordered_keys() == eager.ordered_keys()
        assert len(lazy) == len(eager)
    assert list(lazy) == list(eager) and lazy == eager
    assert lazy.ordered_keys() == eager.ordered_keys()


def test_every_version_is_read_and_the_actor_writes_version_3() -> None:
    state = large_user(300)
    actor = UserActor("someone")
    assert actor.snapshot_version == SNAPSHOT_VERSION == 3
    version_1 = {
        "contacts": {"schema": 1, "contacts": [contact_to_dict(c) for c in state.contacts]},
        "keys": [[k, e.contact_id, e.fingerprint, e.at.isoformat(), e.outcome]
                 for k, e in state.keys.items()],
    }
    version_2 = asyncio.run(encode_state_text(list(state.contacts), list(state.keys.items())))
    without_cards = [msgspec.structs.replace(c, card=None) for c in state.contacts]
    for version, payload in ((1, json.dumps(version_1)), (2, version_2), (3, binary(state))):
        restored = actor.decode_snapshot(payload, version)  # type: ignore[arg-type]
        expected = without_cards if version == 1 else list(state.contacts)  # 1 had no cards
        assert list(restored.contacts) == expected
        assert list(restored.keys.items()) == list(state.keys.items())
    with pytest.raises(JournalIntegrityError, match="version 4"):
        actor.decode_snapshot(version_2, 4)
    with pytest.raises(JournalIntegrityError, match="version 3 without its blob"):
        actor.decode_snapshot(version_2, 3)
    with pytest.raises(JournalIntegrityError, match="version 2 with a blob"):
        actor.decode_snapshot(binary(state), 2)  # type: ignore[arg-type]


def test_a_damaged_blob_fails_at_recovery_and_damaged_keys_when_first_used() -> None:
    state = large_user(300)
    good = binary(state)
    for damaged in (good.data[:-10], b"\xc1" + good.data[1:], good.data[:100]):
        with pytest.raises(ValueError, match="corrupt binary snapshot"):
            decode_snapshot(BinarySnapshot(damaged, good.state), 3, "someone")
    with pytest.raises(ValueError, match="declares"):
        decode_snapshot(BinarySnapshot(good.data, {"contacts": 1, "keys": 300}), 3, "someone")
    for column, value in (("created_at", 10**6), ("emails", "not a list")):
        damaged_state = decode_snapshot(damage(good, "contacts", column, value), 3, "x")
        assert len(damaged_state.contacts) == len(state.contacts)  # the ids are fine
        with pytest.raises(JournalIntegrityError, match="corrupt contacts in snapshot"):
            damaged_state.contacts.get(state.contacts.ordered_keys()[0][1])
    blob = msgspec.msgpack.decode(good.data)
    blob["ids"][1] = blob["ids"][0]
    with pytest.raises(ValueError, match="appears twice"):
        decode_snapshot(BinarySnapshot(msgspec.msgpack.encode(blob), good.state), 3, "x")
    for column in ("n", "prefixes"):
        restored = decode_snapshot(damage(good, "keys", column, None), 3, "x")
        assert len(restored.contacts) == len(state.contacts)
        with pytest.raises(JournalIntegrityError, match="corrupt idempotency keys"):
            _ = restored.keys


def damage(good: BinarySnapshot, part: str, column: str, value: object) -> BinarySnapshot:
    """``good`` with the first value of one column of its ``contacts`` or ``keys`` part set
    to ``value`` (the whole column removed if ``value`` is None)."""
    blob = msgspec.msgpack.decode(good.data)
    columns = msgspec.msgpack.decode(blob[part])
    if value is None:
        del columns[column]
    else:
        columns[column][0] = value
    blob[part] = msgspec.msgpack.encode(columns)
    return BinarySnapshot(msgspec.msgpack.encode(blob), good.state)


def test_the_binary_encoder_yields_to_the_event_loop_between_columns() -> None:
    state = large_user(1_000)
    ticks = 0

    async def ticker(stop: asyncio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    async def main() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(ticker(stop))
        await asyncio.sleep(0)
        before = ticks
        await encode_state_binary(list(state.contacts), list(state.keys.items()))
        stop.set()
        await running
        assert ticks - before >= len(COLUMNS)

    asyncio.run(main())


async def test_a_user_restarts_from_a_version_2_snapshot_and_then_writes_version_3(
    engine_factory: EngineFactory, tmp_path: Path, database_url: str
) -> None:
    engine = await engine_factory()
    settings = Settings(database_url=database_url, data_dir=tmp_path, snapshot_every=100)
    pid = persistence_id("u")
    backend = await LocalBackend.open(settings, engine=engine)
    try:
        for i in range(150):
            await backend.create("u", {"name": f"P{i}", "emails": [f"p{i}@example.org"]})
        await backend.system.wait_for_snapshots()
        first = await engine.load_snapshot(pid)
        assert first is not None and first.sequence_nr == 100 and first.blob is not None
        assert first.payload["snapshot_version"] == 3
        expected = await backend.list("u", limit=1000)
    finally:
        await backend.close()
    restored_v3 = UserActor("u").decode_snapshot(
        BinarySnapshot(first.blob, first.payload["state"]), 3)
    assert len(restored_v3.contacts) == 100
    # the same user as an older release left it: a version-2 snapshot at the journal's head
    old_state = restored_v3
    highest = await engine.highest_sequence_nr(pid)
    async for stored in engine.replay(pid, 101):
        old_state.apply(decode_journaled(stored.type, stored.version, stored.payload))
    text = await encode_state_text(list(old_state.contacts), list(old_state.keys.items()))
    await engine.delete_snapshots(pid)
    await engine.save_snapshot(pid, highest, {"snapshot_version": 2, "state": text})
    backend = await LocalBackend.open(settings, engine=engine)
    try:
        assert await backend.list("u", limit=1000) == expected
        assert backend.runtime_metrics().get("events_replayed", 0) == 0
        for i in range(150, 260):
            await backend.create("u", {"name": f"P{i}"})
    finally:
        await backend.close()  # 110 events behind: the snapshot on stop
    latest = await engine.load_snapshot(pid)
    assert latest is not None and latest.sequence_nr == highest + 110
    assert latest.payload["snapshot_version"] == 3 and latest.blob is not None
