"""The snapshot path: when a persistent actor snapshots, how, and who owns the work.

Every snapshot of every persistent actor (class or functional API, scheduled, explicit or on
stop) goes through one :class:`Snapshotter` per actor and the same four steps:

1. **due**: the actor's :class:`~actors.snapshot_strategies.SnapshotStrategy` is asked after
   each persisted event (class API) or each command that persisted (functional API), against
   the :class:`~actors.snapshot_strategies.LastSnapshot` mark;
2. **capture**, synchronously, at a point where the state is exactly the one after
   ``sequence_nr``: ``view = snapshot_view(state)`` (default: the state itself), then
   ``encode_snapshot(view)``. A *synchronous* encoder runs right there, and its result is
   frozen there (serialised and parsed back), so a state mutated in place later cannot leak
   into the snapshot. An *async* encoder is only called there: it runs later and must read
   nothing but the view, which therefore has to be independent of the live state (e.g. a
   copy of the list of immutable items). The mark moves to ``sequence_nr`` at capture, so
   the strategy is not asked the same question again while the snapshot is being saved;
3. **encode and save**: the async encoder is awaited (it may yield to the event loop, e.g.
   between columns) and its result wrapped in the envelope
   ``{"snapshot_version": v, "state": <encoder's result>}``. A ``str`` result is
   pre-encoded JSON text, stored as it is as a JSON string (text is immutable, so it is not
   frozen); a :class:`BinarySnapshot` stores its ``data`` as the engine's blob, its small
   JSON ``state`` in the envelope and the blob's length beside it (``"blob_bytes"``); any
   other result is a JSON value, frozen. Then ``engine.save_snapshot``;
4. **failure**: any error of steps 2-3 goes to ``on_snapshot_failure(error, sequence_nr)``
   (a warning in the log by default); the actor goes on, and the mark rolls back to the
   previous snapshot, so a level-triggered strategy finds the snapshot due again at the next
   event: the schedule retries after the next command.

Where the capture happens:

* **inline** (the default): at the event where the snapshot fell due, even in the middle of
  a ``persist_all``; it is saved before that ``persist`` returns (later due points of the
  same batch replace an earlier capture: one save per write);
* **in the background** (``snapshot_in_background``): at the end of the command, after its
  handler returned (so after its reply), with the state and ``sequence_nr`` of that moment;
  steps 3-4 run in a task owned by the actor system (:class:`SnapshotTasks`), and the
  actor's next commands never wait for it. At most one snapshot per actor is in flight:
  while one is, a due snapshot stays *owed* and is captured at the end of the first command
  after it finished.

**Deferral**: a handler that knows more work of the same kind follows (the next chunk of a
streaming import) calls ``ctx.defer_snapshot(max_deferral)``: for that command a due snapshot
stays owed instead of being captured, until the end of a command that does not defer, unless
the journal is ``max_deferral`` events or more past the last snapshot, then it is taken anyway
(bounding what a crash in the middle replays). An owed snapshot is never lost while the actor
runs; at a stop it is covered by the snapshot on stop, if enabled.

**On stop** (``snapshot_on_stop``): a graceful stop (``stop``, passivation, the system's
shutdown) waits for the snapshot in flight, then snapshots inline if the strategy says the
actor is ``behind`` (:class:`~actors.snapshot_strategies.Every` and
:class:`~actors.snapshot_strategies.Amortised`: at least ``every`` events since the last
snapshot), and the stop waits for it, at most the system's ``snapshot_drain_timeout``
(past that the snapshot counts as failed: a stop never hangs on an engine that does not
answer): a restart after a big import replays nothing.

**Explicit** (``ctx.snapshot()``): waits for the snapshot in flight, then captures and saves
inline; returns whether it was saved.

**Restore**: recovery hands the decoder (``decode_snapshot(state, version)``) the envelope's
``state`` and its ``snapshot_version``; for a snapshot saved with a blob, ``state`` is the
:class:`BinarySnapshot` the encoder returned (``data`` the blob, ``state`` its JSON part),
so one decoder reads every version the actor ever wrote, binary or not. An envelope whose
``blob_bytes`` does not match the stored blob (missing, truncated), or a blob no envelope
declares, fails recovery (:class:`~persistence.errors.JournalIntegrityError`).

The system drains its :class:`SnapshotTasks` when it shuts down (after every actor stopped),
waiting at most ``snapshot_drain_timeout`` seconds before it cancels the rest; and
``await system.wait_for_snapshots()`` waits for the ones in flight at any time.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from actors.snapshot_strategies import NO_SNAPSHOT, LastSnapshot, SnapshotStrategy, check_positive
from persistence.engine import Engine, Json, normal_json
from persistence.errors import JournalIntegrityError

S = TypeVar("S")

log = logging.getLogger("actors.snapshots")

DEFAULT_MAX_DEFERRAL = 100_000
"""How far (in events) ``ctx.defer_snapshot()`` may run past the last snapshot by default."""

DEFAULT_DRAIN_TIMEOUT = 30.0
"""Seconds a shutting-down system waits for its background snapshots by default."""

SnapshotEncoder = Callable[[Any], "Json | BinarySnapshot | Awaitable[Json | BinarySnapshot]"]
"""``encode_snapshot(view)``: sync (runs at capture) or async (runs in the save step); a
JSON value, JSON text, or a :class:`BinarySnapshot`."""


# -- the stored envelope -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BinarySnapshot:
    """A snapshot whose bulk is bytes: an encoder returns one to have ``data`` stored as the
    engine's binary part (``Snapshot.blob``, ``bytea`` in PostgreSQL) and ``state``, a small
    JSON value, in the envelope; the decoder gets one back for every snapshot saved so.

    For a state that is slow to restore from JSON (a large user's contacts): a binary
    encoding skips the database's rendering of ``jsonb`` as text and the parse of it."""

    data: bytes
    state: Json = None


def wrap_snapshot(encoded: Json, version: int, what: str) -> tuple[Json, bytes | None]:
    """The stored envelope of ``encoded`` and the blob to store beside it (None: none).

    Text is kept as it is; a JSON value (or a :class:`BinarySnapshot`'s ``state``) is frozen
    now as plain JSON (later mutations of the state cannot leak into it); a blob is
    ``bytes``, immutable."""
    if isinstance(encoded, BinarySnapshot):
        if type(encoded.data) is not bytes:
            raise TypeError(
                f"{what}: BinarySnapshot.data must be bytes, got {type(encoded.data).__name__}"
            )
        envelope = {
            "snapshot_version": version, "state": encoded.state, "blob_bytes": len(encoded.data)
        }
        return normal_json(envelope, what), encoded.data
    envelope = {"snapshot_version": version, "state": encoded}
    if isinstance(encoded, str):
        return envelope, None
    return normal_json(envelope, what), None


def unwrap_snapshot(payload: Json, where: str, blob: bytes | None = None) -> tuple[Json, int]:
    """The encoded state and its version from a stored envelope and blob (the state is a
    :class:`BinarySnapshot` when the envelope declares a blob), or JournalIntegrityError."""
    if (
        not isinstance(payload, dict)
        or "state" not in payload
        or not isinstance(payload.get("snapshot_version"), int)
    ):
        raise JournalIntegrityError(
            f"{where}: not a snapshot envelope (expected an object with 'snapshot_version' "
            f"and 'state')"
        )
    declared = payload.get("blob_bytes")
    if declared is None and blob is None:
        return payload["state"], payload["snapshot_version"]
    if declared is None:
        raise JournalIntegrityError(f"{where}: has a blob its envelope does not declare")
    if blob is None or len(blob) != declared:
        found = "none" if blob is None else f"{len(blob)} bytes"
        raise JournalIntegrityError(
            f"{where}: its envelope declares a blob of {declared} bytes, the engine returned "
            f"{found}"
        )
    return BinarySnapshot(blob, payload["state"]), payload["snapshot_version"]


# -- the system's share: background tasks ----------------------------------------------------


class SnapshotTasks:
    """The background snapshots of one actor system: held so none is garbage-collected
    mid-way, awaited on demand, drained when the system shuts down."""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[bool]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, work: Coroutine[Any, Any, bool], name: str) -> asyncio.Task[bool]:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def settle(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait until no snapshot is in flight (including ones started meanwhile); False if
        some still are after ``timeout`` seconds. The snapshots are never cancelled here."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._tasks:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            _, pending = await asyncio.wait(list(self._tasks), timeout=remaining)
            if pending:
                return False
        return True

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109
        """:meth:`settle` for at most ``timeout`` seconds, then cancel what is left (the
        journal has every event: a lost snapshot costs replay time, nothing else)."""
        if await self.settle(timeout):
            return
        left = list(self._tasks)
        log.warning("cancelling %d snapshot(s) still running after %gs", len(left), timeout)
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)


# -- one actor's share -------------------------------------------------------------------------


@dataclass(slots=True)
class _Capture:
    """A captured snapshot not saved yet: ``payload`` is the envelope (and ``blob`` its
    binary part), or the pending result of an async encoder; ``previous`` is the mark to roll
    back to if it fails."""

    sequence_nr: int
    payload: Any
    mark: LastSnapshot
    previous: LastSnapshot
    blob: bytes | None = None


class Snapshotter(Generic[S]):
    """One persistent actor's snapshot bookkeeping and its path (see the module docstring).

    Only the actor's own task calls it, except the save step of a background snapshot,
    which touches nothing but the mark (rolling it back on failure, if still its own).
    """

    def __init__(
        self,
        persistence_id: str,
        *,
        strategy: SnapshotStrategy[S] | None,
        version: int,
        view: Callable[[S], Any],
        encode: SnapshotEncoder,
        on_failure: Callable[[BaseException, int], None] | None,
        in_background: bool = False,
        on_stop: bool = False,
    ) -> None:
        self.persistence_id = persistence_id
        self.strategy = strategy
        self.version = version
        self.in_background = in_background
        self.on_stop = on_stop
        self._view = view
        self._encode = encode
        self._on_failure = on_failure
        self.last: LastSnapshot = NO_SNAPSHOT
        self.owed = False
        self.deferral: int | None = None
        """The current command's ``max_deferral`` (None: it does not defer)."""
        self.in_flight: asyncio.Task[bool] | None = None
        self.captured: _Capture | None = None
        """The inline capture of the write in progress, saved by :meth:`flush`."""
        self._engine: Engine | None = None
        self._tasks: SnapshotTasks | None = None

    # -- life cycle ----------------------------------------------------------------------

    def recovered(
        self, engine: Engine, tasks: SnapshotTasks, sequence_nr: int | None, size: int
    ) -> None:
        """Start over after a recovery that found a snapshot at ``sequence_nr`` (None: none)
        whose state measured ``size``."""
        self._engine = engine
        self._tasks = tasks
        self.last = LastSnapshot(sequence_nr, size) if sequence_nr else NO_SNAPSHOT
        self.owed = False
        self.deferral = None
        self._discard_captured()

    def measure(self, state: S) -> int:
        return self.strategy.measure(state) if self.strategy is not None else 0

    def defer(self, max_deferral: int) -> None:
        """``ctx.defer_snapshot``: this command holds a due snapshot back (bounded)."""
        self.deferral = check_positive(max_deferral, "max_deferral")

    # -- due ---------------------------------------------------------------------------------

    def consider(self, sequence_nr: int, state: S, event: Any) -> None:
        """Ask the strategy after ``event`` (numbered ``sequence_nr``, giving ``state``)."""
        strategy = self.strategy
        if strategy is not None and strategy.due(sequence_nr, self.last, state, event):
            self.fell_due(sequence_nr, state)

    def fell_due(self, sequence_nr: int, state: S) -> None:
        """Capture now (inline and not held back), or owe the snapshot to a command's end."""
        if self.in_background or self._held(sequence_nr):
            self.owed = True
        else:
            self._capture(sequence_nr, state)

    def _held(self, sequence_nr: int) -> bool:
        deferral = self.deferral
        if deferral is not None and sequence_nr - self.last.sequence_nr < deferral:
            return True
        return self.in_flight is not None and not self.in_flight.done()

    # -- the points where a capture is saved ---------------------------------------------

    async def flush(self) -> None:
        """Save the inline capture of the write that just ended, if any."""
        captured = self.captured
        if captured is not None:
            self.captured = None
            await self._save(captured)

    async def command_done(self, sequence_nr: int, state: S) -> None:
        """A command ended: take the owed snapshot unless it is still held back."""
        if not self.owed or self._held(sequence_nr):
            return
        captured = self._capture(sequence_nr, state)
        self.captured = None
        if captured is None:
            return
        if self.in_background:
            assert self._tasks is not None
            self.in_flight = self._tasks.start(
                self._save(captured), f"snapshot {self.persistence_id} #{sequence_nr}"
            )
        else:
            await self._save(captured)

    async def take(self, sequence_nr: int, state: S) -> bool:
        """Snapshot now and wait for it (explicit, or on stop); whether it was saved."""
        await self.wait_in_flight()
        captured = self._capture(sequence_nr, state)
        self.captured = None
        return captured is not None and await self._save(captured)

    async def stopping(self, sequence_nr: int, state: S, *, within: float) -> None:
        """The actor stops gracefully: with ``on_stop``, wait for the snapshot in flight and
        snapshot if behind (see the module docstring); without, leave it to the system.

        At most ``within`` seconds (the system's ``snapshot_drain_timeout``): a snapshot is
        an optimisation, the journal has everything, and an engine that does not answer must
        not hang the stop. Past that it counts as a failed snapshot."""
        if not self.on_stop:
            return
        try:
            async with asyncio.timeout(within):
                await self.wait_in_flight()
                strategy = self.strategy
                behind = (
                    strategy.behind(sequence_nr, self.last) if strategy is not None
                    else sequence_nr > self.last.sequence_nr
                )
                if behind:
                    await self.take(sequence_nr, state)
        except TimeoutError:
            self.failed(
                TimeoutError(f"the snapshot on stop took longer than {within:g} s"), sequence_nr
            )

    async def wait_in_flight(self) -> None:
        task = self.in_flight
        if task is not None and not task.done():
            await asyncio.wait([task])

    # -- capture, save, failure ------------------------------------------------------------

    def _capture(self, sequence_nr: int, state: S) -> _Capture | None:
        what = f"snapshot of {self.persistence_id!r} at sequence_nr {sequence_nr}"
        try:
            encoded = self._encode(self._view(state))
            payload, blob = (
                (encoded, None) if inspect.isawaitable(encoded)
                else wrap_snapshot(encoded, self.version, what)
            )
            mark = LastSnapshot(sequence_nr, self.measure(state))
        except Exception as exc:
            self.failed(exc, sequence_nr)
            return None
        earlier = self._discard_captured()
        previous = earlier.previous if earlier is not None else self.last
        self.last = mark
        self.owed = False
        self.captured = _Capture(sequence_nr, payload, mark, previous, blob)
        return self.captured

    def _discard_captured(self) -> _Capture | None:
        captured, self.captured = self.captured, None
        if captured is not None and inspect.iscoroutine(captured.payload):
            captured.payload.close()
        return captured

    async def _save(self, captured: _Capture) -> bool:
        sequence_nr = captured.sequence_nr
        try:
            payload, blob = captured.payload, captured.blob
            if inspect.isawaitable(payload):
                what = f"snapshot of {self.persistence_id!r} at sequence_nr {sequence_nr}"
                payload, blob = wrap_snapshot(await payload, self.version, what)
            assert self._engine is not None
            await self._engine.save_snapshot(self.persistence_id, sequence_nr, payload, blob)
        except Exception as exc:
            if self.last is captured.mark:
                self.last = captured.previous
            self.failed(exc, sequence_nr)
            return False
        return True

    def failed(self, error: BaseException, sequence_nr: int) -> None:
        """Report a snapshot that was not saved to the hook (or the log); never raises."""
        hook = self._on_failure
        if hook is None:
            log.warning(
                "snapshot of %r at sequence_nr %d failed: %s",
                self.persistence_id, sequence_nr, error,
            )
            return
        try:
            hook(error, sequence_nr)
        except Exception:
            log.exception("on_snapshot_failure of %r raised", self.persistence_id)
