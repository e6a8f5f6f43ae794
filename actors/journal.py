"""The persist path of one persistent actor: append events, advance after the engine confirms.

The sequence number moves only once :meth:`persistence.engine.Engine.append` has returned, i.e.
once the events are durable; a failed write leaves it where it was. A write that failed in a way
that may still have reached storage (connection lost, cancelled) marks the journal *uncertain*:
the actor must recover from the journal before it handles anything else.

Under cluster placement every append carries the activation's lease as its ``fence``
(``actors/placement.py``): storage writes it only while that lease is held, and raises
:class:`~persistence.errors.LeaseLost` otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from actors.errors import PersistInProgress
from persistence.engine import Engine, NewEvent, StoredEvent
from persistence.errors import JournalIntegrityError, SerializationError
from persistence.leases import Lease


class Journal:
    """The write side of one ``persistence_id``: its confirmed ``sequence_nr`` and appends."""

    def __init__(self, engine: Engine, persistence_id: str) -> None:
        self.engine = engine
        self.persistence_id = persistence_id
        self.sequence_nr = 0
        self.uncertain = False
        self.last_write_seconds = 0.0
        self.fence: Lease | None = None
        """The lease every append must still hold (``None``: no cluster placement)."""
        self._writing = False

    def reset(self, sequence_nr: int) -> None:
        """Start over from ``sequence_nr`` (what recovery found); the journal is certain again."""
        self.sequence_nr = sequence_nr
        self.uncertain = False

    async def write(self, events: Sequence[NewEvent]) -> list[StoredEvent]:
        """Append ``events`` after the confirmed sequence number and return them as stored.

        Raises :class:`~persistence.errors.ConcurrencyConflict` when another writer got there
        first (the journal is then uncertain: recover before going on), and whatever the engine
        raised otherwise.
        """
        if self._writing:
            raise PersistInProgress(
                f"{self.persistence_id!r}: persist called while another persist is in flight; "
                f"await each persist before the next"
            )
        if not events:
            return []
        self._writing = True
        started = time.perf_counter()
        try:
            if self.fence is None:  # no placement: the call every engine has always taken
                stored = await self.engine.append(self.persistence_id, events, self.sequence_nr)
            else:
                stored = await self.engine.append(
                    self.persistence_id, events, self.sequence_nr, fence=self.fence
                )
        except SerializationError:
            raise
        except BaseException:
            self.uncertain = True
            raise
        finally:
            self._writing = False
            self.last_write_seconds = time.perf_counter() - started
        expected = list(range(self.sequence_nr + 1, self.sequence_nr + 1 + len(events)))
        if [e.sequence_nr for e in stored] != expected:
            self.uncertain = True
            raise JournalIntegrityError(
                f"{self.persistence_id!r}: the engine stored sequence numbers "
                f"{[e.sequence_nr for e in stored]}, expected {expected}"
            )
        self.sequence_nr = stored[-1].sequence_nr
        return stored

