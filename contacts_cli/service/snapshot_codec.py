"""The user actor's snapshot payload: the contacts and idempotency keys, column by column.

Versions (the ``snapshot_version`` stored with each snapshot):

* 1: a JSON list of contact objects, keys as rows ``[key, contact, fingerprint, at, outcome]``;
* 2: the domain's columnar contacts (one list per field) and the keys as columns too, an
  index into the contacts' ``id`` column standing for a key's contact, as JSON;
* 3 (written now): the same columns in MessagePack (``msgspec``), stored as the snapshot's
  blob (:class:`~actors.snapshots.BinarySnapshot`); the JSON part holds the counts.

All three are read. Version 3 exists for the restart of a large user: for 100,000 contacts,
version 2 costs PostgreSQL rendering 11 MB of ``jsonb`` as text and two JSON parses of it
(the envelope's string, then the columns); version 3 is 9 MB of bytes loaded as they are
and at a restart only the contacts' ids are decoded: the other columns (decoded by
``msgspec`` straight into the fields' types, tuples, datetimes, cards, checking every value's
type as it goes) and the contacts built from them wait for the first command that needs a
contact (:mod:`~contacts_cli.domain.snapshot_rows`), and the idempotency keys for the first
that needs a key (both are views of the blob until then).

Both encoders build the payload a column at a time with the event loop free in between
(:func:`encode_state_text`, :func:`encode_state_binary`), so a large user's snapshot never
stalls the other users' requests for long.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import Any

import msgspec

from actors.snapshots import BinarySnapshot
from contacts_cli.domain import (
    Card,
    Contact,
    ContactsState,
    state_from_snapshot,
    state_to_snapshot,
)
from contacts_cli.domain.snapshot_rows import COLUMNS, SnapshotRows
from contacts_cli.domain.state import (
    SNAPSHOT_SCHEMA,
    iter_contact_columns,
    iter_snapshot_columns,
    pack_column,
    unpack_column,
)
from contacts_cli.service.user_state import KeyEntry, UserState
from persistence.errors import JournalIntegrityError

SNAPSHOT_VERSION = 3
"""1: a JSON list of contact objects; 2: columns (one list per field), keys as columns too;
3: the columns of version 2 in MessagePack, stored as the snapshot's blob."""
READABLE_SNAPSHOT_VERSIONS = (1, 2, 3)


def encode_state(state: UserState) -> dict[str, Any]:
    """The snapshot payload: the domain's snapshot plus the remembered idempotency keys."""
    contacts = state_to_snapshot(state.contacts)
    return {"contacts": contacts, "keys": _key_columns(list(state.keys.items()), contacts["id"])}


async def encode_state_text(
    contacts: Sequence[Contact], keys: Sequence[tuple[str, KeyEntry]]
) -> str:
    """:func:`encode_state` as JSON text, built a column at a time with the event loop free
    in between: a large user's snapshot never stalls the other users' requests for long."""
    parts: list[str] = []
    ids: list[str] = []
    for name, values in iter_snapshot_columns(contacts):
        if name == "id":
            ids = values
        packed = values if name in ("id", "times") else pack_column(values)
        parts.append(f'"{name}":{_dumps(packed)}')
        await asyncio.sleep(0)
    key_columns = await _key_columns_yielding(keys, ids)
    return (
        f'{{"contacts":{{"schema":{SNAPSHOT_SCHEMA},{",".join(parts)}}},'
        f'"keys":{_dumps(key_columns)}}}'
    )


def decode_snapshot(
    payload: Mapping[str, Any] | str | BinarySnapshot, version: int, where: str
) -> UserState:
    """The state in a snapshot of ``version`` (``where``: whose, for the error message)."""
    if version not in READABLE_SNAPSHOT_VERSIONS:
        raise JournalIntegrityError(
            f"snapshot of {where!r} has version {version}, "
            f"this code reads {', '.join(map(str, READABLE_SNAPSHOT_VERSIONS))}"
        )
    if version == 3:
        if not isinstance(payload, BinarySnapshot):
            raise JournalIntegrityError(f"snapshot of {where!r}: version 3 without its blob")
        return decode_state_binary(payload)
    if isinstance(payload, BinarySnapshot):
        raise JournalIntegrityError(f"snapshot of {where!r}: version {version} with a blob")
    return decode_state(payload)


def decode_state(payload: Mapping[str, Any] | str) -> UserState:
    """Inverse of :func:`encode_state` and :func:`encode_state_text` (and of the row-wise
    format of snapshot version 1)."""
    data = json.loads(payload) if isinstance(payload, str) else payload
    contacts = state_from_snapshot(data["contacts"])
    keys = data["keys"]
    if isinstance(keys, list):
        return UserState(contacts, {
            key: KeyEntry(contact_id, fingerprint, datetime.fromisoformat(at), outcome)
            for key, contact_id, fingerprint, at, outcome in keys
        })
    ids = data["contacts"]["id"]
    if not isinstance(keys, dict) or not isinstance(ids, list):
        raise ValueError("the snapshot's keys are neither rows nor columns")
    _check_key_columns(keys)

    def load_keys() -> dict[str, KeyEntry]:
        try:
            return _keys_from_columns(keys, ids)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise JournalIntegrityError(f"corrupt idempotency keys in snapshot: {exc!r}") from exc

    return UserState(contacts, load_keys=load_keys)


# -- version 3: MessagePack columns in the snapshot's blob -------------------------------------


class _ContactColumns(msgspec.Struct, frozen=True):
    """The contacts of a version-3 blob but their ids: the other
    :data:`~contacts_cli.domain.snapshot_rows.COLUMNS` (each decoded into its field's type) and the
    ``times`` table the time columns index."""

    name: list[str]
    emails: list[tuple[str, ...]]
    phones: list[tuple[str, ...]]
    company: list[str | None]
    title: list[str | None]
    address: list[str | None]
    birthday: list[str | None]
    notes: list[str | None]
    labels: list[tuple[str, ...]]
    created_at: list[int]
    updated_at: list[int]
    version: list[int]
    card: list[Card | None]
    times: list[datetime]


class _Blob(msgspec.Struct, frozen=True):
    """A version-3 blob: the contacts' ids, then their other columns and the keys' columns
    (those of version 2), each encoded on its own and stored as a binary value: a restart
    decodes the ids and takes the rest as views of the blob, without walking through them."""

    ids: list[str]
    contacts: memoryview
    keys: memoryview


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Blob)
_COLUMNS_DECODER = msgspec.msgpack.Decoder(_ContactColumns)


async def encode_state_binary(
    contacts: Sequence[Contact], keys: Sequence[tuple[str, KeyEntry]]
) -> BinarySnapshot:
    """The version-3 snapshot of ``contacts`` and ``keys``, encoded a column at a time with
    the event loop free in between (each column is a few milliseconds for 100,000
    contacts); the columns are then joined as they are (``msgspec.Raw``), without being
    encoded again."""
    columns: dict[str, msgspec.Raw] = {}
    ids: list[str] = []
    for name, values in iter_contact_columns(contacts):
        if name == "id":
            ids = values
        else:
            columns[name] = msgspec.Raw(_ENCODER.encode(values))
        await asyncio.sleep(0)
    key_columns = await _key_columns_yielding(keys, ids)
    blob = _ENCODER.encode(
        {"ids": ids, "contacts": _ENCODER.encode(columns), "keys": _ENCODER.encode(key_columns)}
    )
    return BinarySnapshot(blob, {"contacts": len(contacts), "keys": len(keys)})


def decode_state_binary(snapshot: BinarySnapshot) -> UserState:
    """Inverse of :func:`encode_state_binary`: the contacts' ids now (a restart needs no
    more), each contact when first needed, the keys on first use.

    At recovery the blob must hold the ids, as many as the snapshot declares, and the other
    two parts as binary values; those are checked when they are first decoded, and a
    damaged column then fails that command with
    :class:`~persistence.errors.JournalIntegrityError` (as damaged keys do)."""
    try:
        blob = _DECODER.decode(snapshot.data)
    except msgspec.DecodeError as exc:  # ValidationError is one
        raise ValueError(f"corrupt binary snapshot: {exc}") from exc
    counts = snapshot.state
    if not isinstance(counts, dict) or counts.get("contacts") != len(blob.ids):
        raise ValueError(
            f"the snapshot declares {counts!r} but its blob holds {len(blob.ids)} contacts"
        )
    rows = SnapshotRows(blob.ids, _column_loader(blob))
    return UserState(
        ContactsState.restored(rows), load_keys=_load_binary_keys(blob.keys, blob.ids, counts)
    )


def _column_loader(blob: _Blob) -> Callable[[], list[list[Any]]]:
    """The decoder of a version-3 snapshot's contact columns, in
    :data:`~contacts_cli.domain.snapshot_rows.COLUMNS` order, timestamps as datetimes."""

    def load_columns() -> list[list[Any]]:
        try:
            decoded = _COLUMNS_DECODER.decode(blob.contacts)
            times = decoded.times
            columns = [blob.ids]
            for name in COLUMNS[1:]:
                values = getattr(decoded, name)
                if name in ("created_at", "updated_at"):
                    values = list(map(times.__getitem__, values))
                columns.append(values)
        except (msgspec.DecodeError, IndexError) as exc:
            raise JournalIntegrityError(f"corrupt contacts in snapshot: {exc!r}") from exc
        return columns

    return load_columns


def _load_binary_keys(
    encoded: memoryview, ids: list[str], counts: Mapping[str, Any]
) -> Callable[[], dict[str, KeyEntry]]:
    """The loader of a version-3 snapshot's keys: their form and values are checked when
    they are decoded, on first use."""

    def load_keys() -> dict[str, KeyEntry]:
        try:
            data = msgspec.msgpack.decode(encoded)
            if not isinstance(data, dict):
                raise ValueError("the keys are not columns")
            _check_key_columns(data)
            keys = _keys_from_columns(data, ids)
            if len(keys) != counts.get("keys"):
                raise ValueError(f"{len(keys)} keys where {counts.get('keys')} were declared")
        except (msgspec.DecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise JournalIntegrityError(f"corrupt idempotency keys in snapshot: {exc!r}") from exc
        return keys

    return load_keys


# -- version 2 (and 1): JSON ---------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _key_columns(keys: Sequence[tuple[str, KeyEntry]], ids: Sequence[str]) -> dict[str, Any]:
    """The keys as columns (see :func:`_iter_key_columns`), all at once."""
    return dict(step for step in _iter_key_columns(keys, ids) if step is not None)


async def _key_columns_yielding(
    keys: Sequence[tuple[str, KeyEntry]], ids: Sequence[str]
) -> dict[str, Any]:
    """:func:`_key_columns` with the event loop free at each pause point."""
    columns: dict[str, Any] = {}
    for step in _iter_key_columns(keys, ids):
        if step is None:
            await asyncio.sleep(0)
        else:
            columns[step[0]] = step[1]
    return columns


_KEY_CHUNK = 20_000
"""Keys handled by one Python-level loop between two pause points of
:func:`_iter_key_columns` (a few milliseconds each)."""


def _iter_key_columns(
    keys: Sequence[tuple[str, KeyEntry]], ids: Sequence[str]
) -> Iterator[tuple[str, Any] | None]:
    """The keys as columns, one ``(name, column)`` at a time, with ``None`` at the points
    where an async caller may yield to the event loop. A key is a shared prefix (up to its
    last ``#``, an import chunk's) plus a suffix; its contact an index into the contacts'
    ``id`` column while it lives.

    Built with C-level ``map``/``zip`` where possible, and the two loops over the keys
    themselves :data:`_KEY_CHUNK` keys at a time: the closing snapshot of a 100,000-row import
    holds 100,000 keys, which took ~120 ms at once under load before."""
    yield "n", len(keys)
    names = list(map(itemgetter(0), keys))
    prefixes: list[str] = []
    suffixes: list[int | str] = []
    for start in range(0, len(names), _KEY_CHUNK):
        chunk = names[start:start + _KEY_CHUNK]
        cut = [key[: key.rfind("#") + 1] for key in chunk]
        prefixes += cut
        yield None
        suffixes += [  # a row number: stored as an integer
            int(rest) if rest.isascii() and rest.isdigit() and rest[0] != "0" and len(rest) < 19
            else rest
            for rest in map(_after, chunk, cut)
        ]
        yield None
    prefix_table, prefix_index = _first_seen_index(prefixes)
    yield "prefixes", prefix_table
    yield "prefix", pack_column(prefix_index)
    yield None
    yield "suffix", pack_column(suffixes)
    entries = list(map(itemgetter(1), keys))
    contact_ids = list(map(attrgetter("contact_id"), entries))
    yield None
    position = dict(zip(ids, range(len(ids)), strict=True))
    yield None
    contact_column = list(map(position.get, contact_ids, contact_ids))
    del position
    yield None
    yield "contact", pack_column(contact_column)
    yield None
    yield "fingerprint", pack_column(list(map(attrgetter("fingerprint"), entries)))
    time_table, time_index = _first_seen_index(list(map(attrgetter("at"), entries)))
    yield None
    yield "at", pack_column(time_index)
    yield "outcome", pack_column(list(map(attrgetter("outcome"), entries)))
    yield "times", [t.isoformat() for t in time_table]


def _after(key: str, prefix: str) -> str:
    return key[len(prefix):]


def _first_seen_index(values: list[Any]) -> tuple[list[Any], list[int]]:
    """The distinct values in order of first appearance, and each value's index among them."""
    table = list(dict.fromkeys(values))
    index = dict(zip(table, range(len(table)), strict=True))
    return table, list(map(index.__getitem__, values))


_KEY_COLUMNS = ("prefix", "suffix", "contact", "fingerprint", "at", "outcome")


def _keys_from_columns(data: Mapping[str, Any], ids: Sequence[str]) -> dict[str, KeyEntry]:
    prefixes = data["prefixes"]
    times = [datetime.fromisoformat(t) for t in data["times"]]
    count = data["n"]
    columns = [unpack_column(name, data[name], count) for name in _KEY_COLUMNS]
    return {
        prefixes[p] + (str(s) if isinstance(s, int) else s):
            KeyEntry(ids[c] if isinstance(c, int) else c, f, times[a], o)
        for p, s, c, f, a, o in zip(*columns, strict=True)
    }


def _check_key_columns(data: Mapping[str, Any]) -> None:
    """The shape of the key columns, checked at recovery (their values on first use), so a
    damaged snapshot fails recovery loudly rather than a later command."""
    count = data.get("n")
    if type(count) is not int or count < 0:
        raise ValueError("the idempotency keys have no valid count")
    if not isinstance(data.get("prefixes"), list) or not isinstance(data.get("times"), list):
        raise ValueError("the idempotency keys lack their prefix or time table")
    for name in _KEY_COLUMNS:
        column = data.get(name)
        if isinstance(column, list) and len(column) != count:
            raise ValueError(f"key column {name!r} does not have {count} values")
        if not isinstance(column, list | dict):
            raise ValueError(f"key column {name!r} is missing")
