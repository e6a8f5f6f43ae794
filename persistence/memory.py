"""The in-memory engine: the whole contract in plain dicts, for tests and demos without a database.

Payloads are stored as JSON text and decoded on read, so callers get the same isolation
(no shared mutable objects) and the same serialisation errors as with PostgreSQL. A
snapshot's blob is ``bytes``, immutable: it is kept and returned as it is.

Fences: an engine built with ``leases=`` (an
:class:`~persistence.placement.memory.InMemoryLeases`) refuses a fenced append or delete
whose lease that table does not hold, checked inside the same lock as the write; without a
table a fence is ignored: one process has no other instance to fence off.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from persistence.engine import (
    MAX_SEQUENCE_NR,
    DurableState,
    Engine,
    Json,
    NewEvent,
    RecoveryStart,
    Snapshot,
    StoredEvent,
    check_append,
    check_blob,
    check_fence_key,
    check_max_count,
    check_range,
    check_text,
    describe_payload,
    encode_json,
)
from persistence.errors import (
    ConcurrencyConflict,
    InvalidArgument,
    LeaseLost,
    StateRevisionConflict,
)

if TYPE_CHECKING:
    from persistence.leases import Lease
    from persistence.placement.memory import InMemoryLeases


@dataclass(slots=True)
class _Row:
    persistence_id: str
    sequence_nr: int
    ordering: int
    timestamp: datetime
    type: str
    version: int
    payload: str
    tags: frozenset[str]
    writer_id: str

    def event(self) -> StoredEvent:
        return StoredEvent(
            self.persistence_id,
            self.sequence_nr,
            self.ordering,
            self.timestamp,
            self.type,
            self.version,
            json.loads(self.payload),
            self.tags,
            self.writer_id,
        )


@dataclass(slots=True)
class _StateRow:
    revision: int
    value: str
    updated_at: datetime
    expires_at: datetime | None
    deleted: bool = False

    def live(self, now: datetime) -> bool:
        return not self.deleted and (self.expires_at is None or self.expires_at > now)


class InMemoryEngine(Engine):
    """Keeps everything in this process; nothing survives it. Safe for concurrent tasks."""

    def __init__(
        self, writer_id: str | None = None, *, leases: InMemoryLeases | None = None
    ) -> None:
        self.writer_id = writer_id or uuid.uuid4().hex
        self.leases = leases
        """The lease table fenced writes are judged against (``None``: fences ignored)."""
        self._journals: dict[str, list[_Row]] = {}
        self._highest: dict[str, int] = {}
        self._ordering = 0
        self._by_ordering: list[_Row] = []
        self._snapshots: dict[str, dict[int, Snapshot]] = {}
        self._states: dict[str, _StateRow] = {}
        self._lock = asyncio.Lock()

    def _check_fence(self, fence: Lease | None, action: str) -> None:
        """Call with the lock held: the check and the write it guards are one step."""
        if fence is not None and self.leases is not None and not self.leases.holds(fence):
            raise LeaseLost(fence.key, fence.owner, fence.epoch, action)

    async def append(
        self,
        persistence_id: str,
        events: Sequence[NewEvent],
        expected_sequence_nr: int,
        *,
        fence: Lease | None = None,
    ) -> list[StoredEvent]:
        if not events:
            return []
        check_append(persistence_id, events, expected_sequence_nr)
        check_fence_key(persistence_id, fence)
        encoded = [
            encode_json(event.payload, describe_payload(persistence_id, number, event))
            for number, event in enumerate(events, start=1)
        ]
        async with self._lock:
            self._check_fence(fence, "append")
            actual = self._highest.get(persistence_id, 0)
            if actual != expected_sequence_nr:
                raise ConcurrencyConflict(persistence_id, expected_sequence_nr, actual)
            now = datetime.now(UTC)
            rows = []
            for offset, (event, payload) in enumerate(zip(events, encoded, strict=True), start=1):
                self._ordering += 1
                rows.append(
                    _Row(
                        persistence_id,
                        expected_sequence_nr + offset,
                        self._ordering,
                        now,
                        event.type,
                        event.version,
                        payload,
                        frozenset(event.tags),
                        self.writer_id,
                    )
                )
            self._journals.setdefault(persistence_id, []).extend(rows)
            self._by_ordering.extend(rows)
            self._highest[persistence_id] = rows[-1].sequence_nr
        return [row.event() for row in rows]

    async def replay(
        self,
        persistence_id: str,
        from_sequence_nr: int = 1,
        to_sequence_nr: int = MAX_SEQUENCE_NR,
        max_count: int | None = None,
    ) -> AsyncIterator[StoredEvent]:
        if not check_range(from_sequence_nr, to_sequence_nr, max_count):
            return
        rows = self._journals.get(persistence_id, [])
        start = bisect.bisect_left(rows, from_sequence_nr, key=lambda r: r.sequence_nr)
        for count, row in enumerate(rows[start:]):
            if row.sequence_nr > to_sequence_nr or (max_count is not None and count >= max_count):
                return
            yield row.event()

    async def highest_sequence_nr(self, persistence_id: str) -> int:
        return self._highest.get(persistence_id, 0)

    async def delete_events_to(
        self, persistence_id: str, to_sequence_nr: int, *, fence: Lease | None = None
    ) -> None:
        check_fence_key(persistence_id, fence)
        async with self._lock:
            self._check_fence(fence, "delete")
            rows = self._journals.get(persistence_id)
            if not rows:
                return
            kept = [r for r in rows if r.sequence_nr > to_sequence_nr]
            gone = {id(r) for r in rows if r.sequence_nr <= to_sequence_nr}
            self._journals[persistence_id] = kept
            self._by_ordering = [r for r in self._by_ordering if id(r) not in gone]

    async def events_by_tag(
        self, tag: str, after_ordering: int = 0, max_count: int | None = None
    ) -> AsyncIterator[StoredEvent]:
        if max_count is not None and max_count <= 0:
            return
        start = bisect.bisect_right(self._by_ordering, after_ordering, key=lambda r: r.ordering)
        count = 0
        for row in self._by_ordering[start:]:
            if tag in row.tags:
                yield row.event()
                count += 1
                if max_count is not None and count >= max_count:
                    return

    async def persistence_ids(self) -> list[str]:
        return sorted(self._highest)

    async def save_snapshot(
        self, persistence_id: str, sequence_nr: int, payload: Json, blob: bytes | None = None
    ) -> None:
        check_text(persistence_id, "persistence_id")
        what = f"snapshot of {persistence_id!r} at {sequence_nr}"
        check_blob(blob, what)
        text = encode_json(payload, what)
        snapshot = Snapshot(
            persistence_id, sequence_nr, datetime.now(UTC), json.loads(text), blob
        )
        self._snapshots.setdefault(persistence_id, {})[sequence_nr] = snapshot

    async def load_snapshot(
        self, persistence_id: str, max_sequence_nr: int = MAX_SEQUENCE_NR
    ) -> Snapshot | None:
        snapshots = self._snapshots.get(persistence_id, {})
        eligible = [seq for seq in snapshots if seq <= max_sequence_nr]
        if not eligible:
            return None
        found = snapshots[max(eligible)]
        return Snapshot(found.persistence_id, found.sequence_nr, found.timestamp,
                        json.loads(json.dumps(found.payload)), found.blob)

    async def recovery_start(self, persistence_id: str, max_count: int) -> RecoveryStart:
        """The highest, the latest snapshot at or below it and the first page after it, read
        in one step (no await in between, so as of one moment); the snapshot is a copy with
        every field of the stored one but a fresh payload."""
        check_max_count(max_count)
        highest = self._highest.get(persistence_id, 0)
        snapshots = self._snapshots.get(persistence_id, {})
        eligible = [seq for seq in snapshots if seq <= highest]
        snapshot = None
        if eligible:
            found = snapshots[max(eligible)]
            snapshot = dataclasses.replace(found, payload=json.loads(json.dumps(found.payload)))
        after = snapshot.sequence_nr if snapshot is not None else 0
        rows = self._journals.get(persistence_id, [])
        start = bisect.bisect_right(rows, after, key=lambda r: r.sequence_nr)
        page = [row.event() for row in rows[start : start + max_count]]
        return RecoveryStart(persistence_id, highest, snapshot, page)

    async def delete_snapshots(
        self, persistence_id: str, min_sequence_nr: int = 0, max_sequence_nr: int = MAX_SEQUENCE_NR
    ) -> None:
        snapshots = self._snapshots.get(persistence_id, {})
        for seq in [s for s in snapshots if min_sequence_nr <= s <= max_sequence_nr]:
            del snapshots[seq]

    async def get_state(self, key: str) -> DurableState | None:
        row = self._states.get(key)
        if row is None or not row.live(datetime.now(UTC)):
            return None
        value = json.loads(row.value)
        return DurableState(key, row.revision, value, row.updated_at, row.expires_at)

    async def upsert_state(
        self, key: str, value: Json, expected_revision: int, ttl: float | None = None
    ) -> DurableState:
        if ttl is not None and not ttl > 0:
            raise InvalidArgument(f"ttl must be a positive number of seconds, got {ttl!r}")
        check_text(key, "state key")
        text = encode_json(value, f"state {key!r}")
        async with self._lock:
            now = datetime.now(UTC)
            row = self._states.get(key)
            current = row.revision if row is not None and row.live(now) else 0
            if current != expected_revision:
                raise StateRevisionConflict(key, expected_revision, current)
            revision = (row.revision if row is not None else 0) + 1
            expires_at = now + timedelta(seconds=ttl) if ttl is not None else None
            self._states[key] = _StateRow(revision, text, now, expires_at)
        return DurableState(key, revision, json.loads(text), now, expires_at)

    async def delete_state(self, key: str, expected_revision: int | None = None) -> bool:
        async with self._lock:
            row = self._states.get(key)
            live = row is not None and row.live(datetime.now(UTC))
            current = row.revision if row is not None and live else 0
            if expected_revision is not None and current != expected_revision:
                raise StateRevisionConflict(key, expected_revision, current)
            if row is not None:
                row.deleted = True
            return live
