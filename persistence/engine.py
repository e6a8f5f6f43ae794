"""The engine contract: the one small async interface every storage backend implements.

An engine stores three things for the actor runtime:

* the **journal**: per ``persistence_id``, an append-only sequence of events numbered
  ``1, 2, 3, ...`` (``sequence_nr``), each also carrying a global ``ordering`` used by
  by-tag readers;
* **snapshots**: per ``persistence_id``, a JSON payload taken at a ``sequence_nr``, with an
  optional binary part (``blob``: bytes the engine stores and returns as they are, for a
  state too large to restore quickly from JSON);
* **durable state**: per key, one JSON value with a ``revision`` and an optional TTL.

Payloads are JSON values. An engine rejects a payload that is not JSON-serialisable with
:class:`~persistence.errors.SerializationError` before it writes anything.

Guarantees every engine gives (the contract tests in ``tests/persistence`` check them):

* ``append`` is atomic per call: all events of the batch are stored or none are, and it
  returns only once they are durable. It writes ``expected_sequence_nr + 1 ...``; if the
  journal's highest sequence number is not ``expected_sequence_nr`` it raises
  :class:`~persistence.errors.ConcurrencyConflict` carrying the actual highest.
* ``highest_sequence_nr`` never goes backwards, even after ``delete_events_to`` removed
  every event; the next append continues from it.
* ``replay`` yields events in ``sequence_nr`` order, streaming: it never holds a whole
  journal in memory.
* a **fence** (``append(..., fence=lease)``, ``delete_events_to(..., fence=lease)``): the
  write lands only while ``lease`` (a :class:`~persistence.placement.model.Lease`, the
  writer's right to that persistence id in cluster placement) is still held, judged in the
  write's own transaction; otherwise nothing is written and
  :class:`~persistence.errors.LeaseLost` is raised. ``None`` (the default, a single
  process) checks nothing. The PostgreSQL engine judges it against its lease table; the
  in-memory engine against the :class:`~persistence.placement.memory.InMemoryLeases` it was
  given, and ignores fences without one (one process, nobody to fence off).
* ``recovery_start`` reads what a recovery starts from: the highest sequence number, the
  latest snapshot at or below it (one beyond it is ignored) and the first page of events
  after that snapshot. An engine with round trips to save shares them among concurrent
  callers (PostgreSQL: one query for many persistence ids); every engine has it, the base
  class builds it from the calls above.
* ``events_by_tag`` yields events in ``ordering`` order and never skips an event whose
  ordering became visible late: the last ordering a reader saw is a safe ``after_ordering``
  to resume from. (An engine may hold back events until that holds, e.g. PostgreSQL while
  an older transaction is still open.)
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeAlias

import msgspec
import orjson

from persistence.errors import InvalidArgument, SerializationError

if TYPE_CHECKING:  # placement's package imports the PostgreSQL driver; the contract does not
    from persistence.leases import Lease

Json: TypeAlias = Any
"""A JSON value: dict, list, str, int, float, bool or None, nested."""

MAX_SEQUENCE_NR = 2**63 - 1


class NewEvent(msgspec.Struct, frozen=True):
    """An event handed to :meth:`Engine.append`: the engine numbers and timestamps it.

    A frozen ``msgspec.Struct``, not a frozen dataclass: one is built per persisted event,
    and a Struct costs a seventh of a frozen dataclass's ``__init__`` (which sets each field
    through ``object.__setattr__``)."""

    type: str
    payload: Json
    version: int = 1
    tags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the journal holds it."""

    persistence_id: str
    sequence_nr: int
    ordering: int
    timestamp: datetime
    type: str
    version: int
    payload: Json
    tags: frozenset[str]
    writer_id: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A snapshot of one persistence id's state, taken after ``sequence_nr`` was applied.

    ``blob`` is the snapshot's binary part, byte for byte as saved; ``None`` when it was
    saved without one (every snapshot written before engines stored blobs reads so).
    """

    persistence_id: str
    sequence_nr: int
    timestamp: datetime
    payload: Json
    blob: bytes | None = None


@dataclass(frozen=True, slots=True)
class RecoveryStart:
    """What a recovery of one persistence id starts from (:meth:`Engine.recovery_start`).

    ``snapshot`` is the latest at or below ``highest_sequence_nr`` (``None`` if there is
    none); ``events`` are the first events after it, at most the ``max_count`` asked for,
    in ``sequence_nr`` order and as stored: a gap shows as a jump in their numbers, or as
    fewer events than ``highest_sequence_nr`` calls for, and is the caller's to detect.
    """

    persistence_id: str
    highest_sequence_nr: int
    snapshot: Snapshot | None
    events: Sequence[StoredEvent]

    @property
    def after_sequence_nr(self) -> int:
        """The sequence number the events continue from: the snapshot's, or 0."""
        return self.snapshot.sequence_nr if self.snapshot is not None else 0


@dataclass(frozen=True, slots=True)
class DurableState:
    """The current value stored under one key; ``revision`` counts its writes from 1."""

    key: str
    revision: int
    value: Json
    updated_at: datetime
    expires_at: datetime | None


# JSON text may spell U+0000 as an escape; PostgreSQL's jsonb cannot store it.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
_REFERENCE = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))

def encode_json(payload: Json, what: str | Callable[[], str]) -> str:
    """Serialise ``payload`` to JSON text every engine can store, or raise
    :class:`SerializationError` naming ``what`` (a callable is only called on error).

    Beyond plain JSON this refuses what PostgreSQL's jsonb refuses (U+0000, lone surrogates),
    so that an event the in-memory engine accepts is one PostgreSQL accepts too.

    The cheap branch is orjson, about eight times faster than the standard library's encoder
    (:func:`encode_json_reference`, which defines what is accepted). orjson's text is used
    only when it decodes back to ``payload`` itself and holds no escaped U+0000; then the
    reference would have written the same value (a float may be spelled differently:
    ``1e-7``, ``1e-07``). Everything else goes to the reference, which accepts or refuses it:
    what orjson refuses (integers beyond 64 bits, non-string keys, lone surrogates, cycles)
    and what it writes but does not read back as given (NaN and Infinity as ``null``, uuids,
    enum members, dataclasses and datetimes as strings or objects, tuples as arrays).
    """
    fast = _orjson_text(payload)
    return fast[0].decode() if fast is not None else encode_json_reference(payload, what)


def normal_json(payload: Json, what: str | Callable[[], str]) -> Json:
    """``payload`` as a replay gives it back (decoded from the text :func:`encode_json`
    writes), or :class:`SerializationError` naming ``what``.

    The cheap branch returns the copy orjson decoded to check its own text, rather than
    parsing that text a second time; the reference's text is decoded by ``json.loads``
    (integers beyond 64 bits stay exact)."""
    fast = _orjson_text(payload)
    if fast is not None:
        return fast[1]
    return json.loads(encode_json_reference(payload, what))


def _orjson_text(payload: Json) -> tuple[bytes, Json] | None:
    """orjson's text of ``payload`` and the value decoded from it, when that value is
    ``payload`` itself (see :func:`encode_json`); else ``None``."""
    try:
        data = orjson.dumps(payload)
    except TypeError:  # orjson.JSONEncodeError is one
        return None
    if b"\\u0000" in data:
        return None
    copy = orjson.loads(data)
    return (data, copy) if copy == payload else None


def encode_json_reference(payload: Json, what: str | Callable[[], str]) -> str:
    """:func:`encode_json` with the standard library's encoder alone: the definition of what
    is accepted, and the wording of every :class:`SerializationError`."""

    def name() -> str:
        return what if isinstance(what, str) else what()

    try:
        text = _REFERENCE.encode(payload)
    except RecursionError:
        raise SerializationError(f"{name()} is nested too deeply to store as JSON") from None
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"{name()} is not JSON-serialisable: {exc}") from exc
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            raise SerializationError(
                f"{name()} is not storable: it contains a lone surrogate, which is not UTF-8"
            ) from None
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        raise SerializationError(
            f"{name()} is not storable: it contains the character U+0000, which PostgreSQL's "
            "jsonb rejects"
        )
    return text


def encode_payloads(persistence_id: str, events: Sequence[NewEvent]) -> tuple[str, list[Json]]:
    """The payloads of an append as one JSON array text, and copies of them decoded from
    that text (what a replay gives back); or :class:`SerializationError` naming the first
    event that cannot be stored.

    One encoder call for the whole batch; only a failure looks at the events one by one.
    The cheap branch's copies come with its text (orjson decoded them to compare); the
    reference's text may hold integers beyond 64 bits, which orjson would turn into floats,
    so ``json.loads`` decodes that.
    """
    payloads = [event.payload for event in events]
    fast = _orjson_text(payloads)
    if fast is not None:
        return fast[0].decode(), fast[1]
    try:
        text = encode_json_reference(
            payloads, lambda: f"payloads of {len(events)} events for {persistence_id!r}"
        )
    except SerializationError:
        for number, event in enumerate(events, start=1):
            encode_json(event.payload, describe_payload(persistence_id, number, event))
        raise
    return text, json.loads(text)


def describe_payload(persistence_id: str, number: int, event: NewEvent) -> Callable[[], str]:
    """How a :class:`SerializationError` names the payload of an append's event #``number``."""
    return lambda: f"payload of event #{number} ({event.type}) for {persistence_id!r}"


def check_text(value: str, what: str) -> None:
    """Refuse an id, type, tag or key that PostgreSQL cannot store as text."""
    if "\x00" in value:
        raise InvalidArgument(f"{what} contains a NUL character, which PostgreSQL cannot store")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise InvalidArgument(f"{what} contains a lone surrogate, which is not UTF-8") from None


def check_blob(blob: object, what: str) -> None:
    """Refuse a snapshot's binary part that is not ``bytes`` (or ``None``): a ``str`` or a
    mutable buffer would not come back as it was given."""
    if blob is not None and type(blob) is not bytes:
        raise InvalidArgument(f"the blob of {what} must be bytes, got {type(blob).__name__}")


def check_append(
    persistence_id: str, events: Sequence[NewEvent], expected_sequence_nr: int
) -> None:
    """The argument checks every engine's :meth:`Engine.append` makes before writing anything.

    The cheap branch: ids, types and tags that are all ASCII without NUL are storable text,
    which one ``isascii`` over their concatenation shows for nearly every append; only
    otherwise :func:`check_append_texts` looks at each and names the culprit.
    """
    if expected_sequence_nr < 0:
        raise InvalidArgument(f"expected_sequence_nr must be >= 0, got {expected_sequence_nr}")
    if expected_sequence_nr + len(events) > MAX_SEQUENCE_NR:
        raise InvalidArgument(f"sequence numbers of {persistence_id!r} would overflow")
    if len(events) == 1:  # many actors' single events: no list to build
        event = events[0]
        joined = persistence_id + event.type
        if event.tags:
            joined += "".join(event.tags)
    else:
        texts = [event.type for event in events]
        texts.append(persistence_id)
        texts += [tag for event in events if event.tags for tag in event.tags]
        joined = "".join(texts)
    if not joined.isascii() or "\x00" in joined:
        check_append_texts(persistence_id, events)


def check_fence_key(persistence_id: str, fence: Lease | None) -> None:
    """Refuse a fence that is not the lease of the id written (a caller's bug: it could
    never pass, and must not be mistaken for a lost lease)."""
    if fence is not None and fence.key != persistence_id:
        raise InvalidArgument(
            f"a write to {persistence_id!r} is fenced with the lease of {fence.key!r}"
        )


def check_append_texts(persistence_id: str, events: Sequence[NewEvent]) -> None:
    """Check the id, every type and every tag of an append one by one (the reference for
    :func:`check_append`'s cheap branch)."""
    check_text(persistence_id, "persistence_id")
    for i, event in enumerate(events, start=1):
        check_text(event.type, f"type of event #{i} for {persistence_id!r}")
        for tag in event.tags:
            check_text(tag, f"tag {tag!r} of event #{i} for {persistence_id!r}")


class Engine(ABC):
    """An async storage backend for journals, snapshots and durable state.

    Use it as an async context manager, or call :meth:`start` and :meth:`close`.
    ``writer_id`` identifies this engine instance in every event it writes.
    """

    writer_id: str

    async def start(self) -> None:
        """Open connections and prepare storage (create or migrate the schema)."""

    async def close(self) -> None:
        """Flush pending writes and release connections."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- journal ---------------------------------------------------------------------------

    @abstractmethod
    async def append(
        self,
        persistence_id: str,
        events: Sequence[NewEvent],
        expected_sequence_nr: int,
        *,
        fence: Lease | None = None,
    ) -> list[StoredEvent]:
        """Atomically append ``events`` after ``expected_sequence_nr``; return them as stored.

        With ``fence``, only while that lease is held (else :class:`LeaseLost`, nothing
        written). An empty batch is a no-op that returns ``[]`` without checking anything.
        """

    @abstractmethod
    def replay(
        self,
        persistence_id: str,
        from_sequence_nr: int = 1,
        to_sequence_nr: int = MAX_SEQUENCE_NR,
        max_count: int | None = None,
    ) -> AsyncIterator[StoredEvent]:
        """Stream the events numbered ``from_sequence_nr..to_sequence_nr`` (inclusive), at most
        ``max_count`` of them (``0`` yields nothing)."""

    @abstractmethod
    async def highest_sequence_nr(self, persistence_id: str) -> int:
        """The highest sequence number ever written for ``persistence_id`` (0 if none)."""

    @abstractmethod
    async def delete_events_to(
        self, persistence_id: str, to_sequence_nr: int, *, fence: Lease | None = None
    ) -> None:
        """Delete the events numbered up to ``to_sequence_nr``, inclusive; keep the highest.

        With ``fence``, only while that lease is held (else :class:`LeaseLost`)."""

    @abstractmethod
    def events_by_tag(
        self, tag: str, after_ordering: int = 0, max_count: int | None = None
    ) -> AsyncIterator[StoredEvent]:
        """Stream events carrying ``tag`` whose ``ordering`` is above ``after_ordering``."""

    @abstractmethod
    async def persistence_ids(self) -> list[str]:
        """Every persistence id that has ever had an event appended, sorted."""

    # -- snapshots -------------------------------------------------------------------------

    @abstractmethod
    async def save_snapshot(
        self, persistence_id: str, sequence_nr: int, payload: Json, blob: bytes | None = None
    ) -> None:
        """Store a snapshot, with ``blob`` as its binary part if given; one at the same
        ``sequence_nr`` is overwritten (blob included: saving without one clears it)."""

    @abstractmethod
    async def load_snapshot(
        self, persistence_id: str, max_sequence_nr: int = MAX_SEQUENCE_NR
    ) -> Snapshot | None:
        """The latest snapshot at or below ``max_sequence_nr``, or ``None``."""

    @abstractmethod
    async def delete_snapshots(
        self, persistence_id: str, min_sequence_nr: int = 0, max_sequence_nr: int = MAX_SEQUENCE_NR
    ) -> None:
        """Delete the snapshots numbered ``min_sequence_nr..max_sequence_nr``, inclusive."""

    # -- recovery ------------------------------------------------------------------------

    async def recovery_start(self, persistence_id: str, max_count: int) -> RecoveryStart:
        """What recovering ``persistence_id`` starts from: its highest sequence number, its
        latest snapshot at or below that (a snapshot beyond the highest is ignored: the
        journal no longer backs it), and the first events after the snapshot up to the
        highest, at most ``max_count`` (>= 1) of them. The caller replays the rest with
        :meth:`replay`, from the last event's ``sequence_nr`` + 1 to the highest.

        Built here from :meth:`highest_sequence_nr`, :meth:`load_snapshot` and
        :meth:`replay`, in that order, each bounded by the highest read first (what a
        recovery did before this call existed). An engine with round trips to save
        overrides it and reads all three as of one moment; the PostgreSQL engine answers
        concurrent callers with one shared query.
        """
        check_max_count(max_count)
        highest = await self.highest_sequence_nr(persistence_id)
        snapshot = await self.load_snapshot(persistence_id, max_sequence_nr=highest)
        after = snapshot.sequence_nr if snapshot is not None else 0
        stream = self.replay(persistence_id, after + 1, highest, max_count=max_count)
        try:
            events = [event async for event in stream]
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        return RecoveryStart(persistence_id, highest, snapshot, events)

    # -- durable state ---------------------------------------------------------------------

    @abstractmethod
    async def get_state(self, key: str) -> DurableState | None:
        """The state stored under ``key``, or ``None`` if absent or expired."""

    @abstractmethod
    async def upsert_state(
        self, key: str, value: Json, expected_revision: int, ttl: float | None = None
    ) -> DurableState:
        """Write ``value`` if the current revision is ``expected_revision`` (0: absent or
        expired); raise :class:`~persistence.errors.StateRevisionConflict` otherwise.

        Revisions are never reused: writing over an expired value continues its count.
        ``ttl`` is in seconds; ``None`` keeps the value until it is deleted.
        """

    @abstractmethod
    async def delete_state(self, key: str, expected_revision: int | None = None) -> bool:
        """Delete the state under ``key``; return whether there was a live value.

        With ``expected_revision`` a stale revision raises ``StateRevisionConflict``.
        """


def check_max_count(max_count: int) -> None:
    """Refuse a first page of a recovery that could not hold a single event."""
    if max_count < 1:
        raise InvalidArgument(f"a recovery's max_count must be >= 1, got {max_count}")


def check_range(from_sequence_nr: int, to_sequence_nr: int, max_count: int | None) -> bool:
    """Whether a replay with these bounds can yield anything at all."""
    if max_count is not None and max_count < 0:
        raise InvalidArgument(f"max_count must be >= 0, got {max_count}")
    return (max_count is None or max_count > 0) and from_sequence_nr <= to_sequence_nr

