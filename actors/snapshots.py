"""When to snapshot, and the envelope a snapshot is stored in.

A snapshot is due at exact sequence numbers: with ``every=N`` at every multiple of N, so a
``persist_all`` of three events crossing a boundary snapshots the state as it was right after
the event numbered N, and the schedule survives restarts. ``when(seq, state, event)`` adds
custom points. The stored payload is ``{"snapshot_version": v, "state": <encoded state>}`` so a
decoder can tell an old snapshot's shape from the current one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from persistence.engine import Json, encode_json
from persistence.errors import JournalIntegrityError

S = TypeVar("S")

SnapshotWhen = Callable[[int, S, Any], bool]
"""``(sequence_nr, state after the event, event) -> bool``: whether to snapshot there."""


def check_snapshot_every(every: object) -> int | None:
    """Validate ``snapshot_every``: ``None`` or a positive integer."""
    if every is None:
        return None
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ValueError(f"snapshot_every must be a positive integer or None, got {every!r}")
    return every


@dataclass(frozen=True, slots=True)
class SnapshotSchedule(Generic[S]):
    """Decides after which persisted events a snapshot is taken."""

    every: int | None = None
    when: SnapshotWhen[S] | None = None

    def __post_init__(self) -> None:
        check_snapshot_every(self.every)

    @property
    def active(self) -> bool:
        return self.every is not None or self.when is not None

    def due(self, sequence_nr: int, state: S, event: Any) -> bool:
        """Whether a snapshot belongs right after the event numbered ``sequence_nr``."""
        if self.every is not None and sequence_nr % self.every == 0:
            return True
        return self.when is not None and bool(self.when(sequence_nr, state, event))

    def crossed(self, before: int, after: int, state: S, event: Any) -> bool:
        """Whether a handler that moved the journal from ``before`` to ``after`` owes a snapshot.

        Used by the functional API, whose state is only known once the handler returns.
        """
        if after <= before:
            return False
        if self.every is not None and after // self.every > before // self.every:
            return True
        return self.when is not None and bool(self.when(after, state, event))


def wrap_snapshot(state_payload: Json, version: int, what: str) -> Json:
    """The stored envelope of a snapshot, frozen now as plain JSON (later mutations can't leak)."""
    envelope = {"snapshot_version": version, "state": state_payload}
    return json.loads(encode_json(envelope, what))


def unwrap_snapshot(payload: Json, where: str) -> tuple[Json, int]:
    """The encoded state and its version from a stored envelope, or JournalIntegrityError."""
    if (
        not isinstance(payload, dict)
        or "state" not in payload
        or not isinstance(payload.get("snapshot_version"), int)
    ):
        raise JournalIntegrityError(
            f"{where}: not a snapshot envelope (expected an object with 'snapshot_version' "
            f"and 'state')"
        )
    return payload["state"], payload["snapshot_version"]
