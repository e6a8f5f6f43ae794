"""Guarantees of idempotency keys that the service tests left unpinned (issue 14's mutation
run of ``contacts_cli/service/idempotency.py``, ``user_state.py`` and
``backends/local_import.py``): each test kills mutants that survived them.

The service-level tests run the real actors on PostgreSQL; the retention window is tested on
:class:`UserState` itself, where journal time can be chosen (a week cannot pass in a test).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from contacts_cli.backends.base import Invalid, NumberedRow
from contacts_cli.backends.local import LocalBackend
from contacts_cli.backends.local_import import ImportOptions
from contacts_cli.domain import ContactCreated
from contacts_cli.service.envelope import Journaled
from contacts_cli.service.idempotency import REPLAYED_REASON, fingerprint
from contacts_cli.service.user_state import IDEMPOTENCY_RETENTION, KeyEntry, UserState
from tests.service.test_user_snapshot import FIELDS, T0


async def test_idempotency_key_reused_with_another_body_is_refused_whichever_came_first(
    backend: LocalBackend,
) -> None:
    ann, bob = {"name": "Ann"}, {"name": "Bob"}
    assert fingerprint(ann) != fingerprint(bob)
    for first, second in ((ann, bob), (bob, ann)):  # the stored digest above, then below
        key = f"reused-{first['name']}"
        created = await backend.create("alice", first, idempotency_key=key)
        with pytest.raises(Invalid) as refused:
            await backend.create("alice", second, idempotency_key=key)
        assert [field for field, _ in refused.value.errors] == ["Idempotency-Key"]
        assert await backend.get("alice", created["id"]) == created
    assert await backend.user_count("alice") == 2


async def test_idempotency_fingerprint_ignores_key_order_and_keeps_its_journaled_text(
    backend: LocalBackend,
) -> None:
    body = {"name": "Zoë", "company": "Ça va"}
    # Journaled with the key: the digest of the sorted, compact, unescaped UTF-8 JSON text,
    # so a key written by an earlier version of the service still matches its retry.
    journaled = hashlib.sha256('{"company":"Ça va","name":"Zoë"}'.encode()).hexdigest()[:32]
    assert fingerprint(body) == journaled
    first = await backend.create("alice", body, idempotency_key="unicode")
    again = await backend.create(
        "alice", {"company": "Ça va", "name": "Zoë"}, idempotency_key="unicode"
    )
    assert again == first
    assert await backend.user_count("alice") == 1


def keyed(n: int, at: timedelta, key: str) -> Journaled:
    return Journaled(ContactCreated(f"id-{n}", FIELDS, T0 + at), key, None)


def test_idempotency_key_is_remembered_for_exactly_the_retention_window() -> None:
    state = UserState()
    state.apply(keyed(0, timedelta(0), "first"))
    state.apply(Journaled(ContactCreated("id-x", FIELDS, T0 + 2 * IDEMPOTENCY_RETENTION)))
    assert "first" in state.keys  # an event without a key forgets nothing
    state.apply(keyed(1, IDEMPOTENCY_RETENTION, "second"))
    assert list(state.keys) == ["first", "second"]  # exactly the window old: remembered
    state.apply(keyed(2, IDEMPOTENCY_RETENTION + timedelta(microseconds=1), "third"))
    assert list(state.keys) == ["second", "third"]  # older than the window: forgotten
    state.apply(keyed(3, 3 * IDEMPOTENCY_RETENTION, "fourth"))
    assert list(state.keys) == ["fourth"]


def test_idempotency_keys_from_a_snapshot_are_decoded_on_first_use_only() -> None:
    entry = KeyEntry("id-0", "digest", T0)
    loads: list[int] = []

    def load() -> dict[str, KeyEntry]:
        loads.append(1)
        return {"snapshotted": entry}

    state = UserState(load_keys=load)
    assert loads == []
    assert state.keys == {"snapshotted": entry}
    assert state.keys == {"snapshotted": entry}
    assert loads == [1]
    given = UserState(keys={"given": entry})
    assert given.keys == {"given": entry}
    assert UserState().keys == {}


def test_idempotency_key_entries_and_import_options_cannot_change_in_place() -> None:
    entry = KeyEntry("id-0", "digest", T0)
    with pytest.raises(AttributeError, match="immutable"):
        entry.contact_id = "id-1"  # type: ignore[misc]
    options = ImportOptions("skip", False, "key", False)  # one import's, for every chunk
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.idempotency_key = "other"  # type: ignore[misc]


async def numbered(count: int) -> AsyncIterator[NumberedRow]:
    for n in range(1, count + 1):
        yield n, {"name": f"Row {n}"}


async def import_chunks(backend: LocalBackend, count: int, **options: Any) -> list[list[int]]:
    """The row numbers of each chunk an import of ``count`` rows was cut into."""
    return [
        [int(outcome["row"]) for outcome in chunk]
        async for chunk in backend.import_numbered_chunks("bulk", numbered(count), **options)
    ]


async def test_idempotency_rows_keep_their_numbers_in_chunks_of_exactly_chunk_size(
    backend: LocalBackend,
) -> None:
    assert await import_chunks(backend, 5, chunk_size=2, idempotency_key="k") == [
        [1, 2],
        [3, 4],
        [5],
    ]
    assert await import_chunks(backend, 3, chunk_size=1, idempotency_key="one") == [
        [1],
        [2],
        [3],
    ]
    with pytest.raises(Invalid) as refused:
        await import_chunks(backend, 1, chunk_size=0)
    assert [field for field, _ in refused.value.errors] == ["chunk_size"]
    resent = [
        outcome
        async for chunk in backend.import_numbered_chunks(
            "bulk", numbered(5), chunk_size=3, idempotency_key="k"
        )
        for outcome in chunk
    ]
    assert [(o["row"], o["reason"]) for o in resent] == [(n, REPLAYED_REASON) for n in range(1, 6)]
    assert await backend.user_count("bulk") == 8
