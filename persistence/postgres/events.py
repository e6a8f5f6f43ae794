"""Building :class:`StoredEvent` objects fast, for replay pages and appended batches.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``; setting
the slots directly halves the cost, which is a tenth of a replayed event's whole budget.
The result is an ordinary, equal, immutable ``StoredEvent``. The field list is checked at
import time, so a field added to ``StoredEvent`` fails loudly here instead of being left
unset.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from psycopg.rows import TupleRow

from persistence.engine import Json, StoredEvent

_FIELDS = (
    "persistence_id",
    "sequence_nr",
    "ordering",
    "timestamp",
    "type",
    "version",
    "payload",
    "tags",
    "writer_id",
)
if StoredEvent.__slots__ != _FIELDS:  # pragma: no cover - a guard for future edits
    raise ImportError(f"StoredEvent fields changed to {StoredEvent.__slots__}; update {__name__}")

_slot: dict[str, Any] = {name: StoredEvent.__dict__[name].__set__ for name in _FIELDS}
_new = object.__new__
_set_pid = _slot["persistence_id"]
_set_seq = _slot["sequence_nr"]
_set_ordering = _slot["ordering"]
_set_timestamp = _slot["timestamp"]
_set_type = _slot["type"]
_set_version = _slot["version"]
_set_payload = _slot["payload"]
_set_tags = _slot["tags"]
_set_writer = _slot["writer_id"]

NO_TAGS: frozenset[str] = frozenset()


def stored_event(
    persistence_id: str,
    sequence_nr: int,
    ordering: int,
    timestamp: datetime,
    type: str,
    version: int,
    payload: Json,
    tags: frozenset[str],
    writer_id: str,
) -> StoredEvent:
    """``StoredEvent(...)``, at about half the cost."""
    event: StoredEvent = _new(StoredEvent)
    _set_pid(event, persistence_id)
    _set_seq(event, sequence_nr)
    _set_ordering(event, ordering)
    _set_timestamp(event, timestamp)
    _set_type(event, type)
    _set_version(event, version)
    _set_payload(event, payload)
    _set_tags(event, tags)
    _set_writer(event, writer_id)
    return event


def events_from_rows(rows: list[TupleRow]) -> list[StoredEvent]:
    """Stored events from a page of rows in ``_EVENT_COLUMN_NAMES`` order, the payload as
    JSON text.

    The page's payloads are decoded with one ``json.loads`` call: per-call overhead, not
    parsing, dominates for small events.
    """
    payloads = json.loads("[" + ",".join([row[6] for row in rows]) + "]")
    new = _new
    events: list[StoredEvent] = []
    append = events.append
    for row, payload in zip(rows, payloads, strict=True):
        event = new(StoredEvent)
        _set_pid(event, row[0])
        _set_seq(event, row[1])
        _set_ordering(event, row[2])
        _set_timestamp(event, row[3])
        _set_type(event, row[4])
        _set_version(event, row[5])
        _set_payload(event, payload)
        _set_tags(event, frozenset(row[7]) if row[7] else NO_TAGS)
        _set_writer(event, row[8])
        append(event)
    return events
