"""Event codecs and schema evolution: how events become (type, version, JSON payload) and back.

Every event is stored with its type name and a version. When the code's current version of a
type is newer than a stored one, registered upcasters turn the old payload into the current
shape, one version at a time, while the journal is replayed. A stored version with no upcaster
path, or newer than the code knows, fails recovery with
:class:`~persistence.errors.JournalIntegrityError` instead of replaying something wrong.

Two codecs ship: :class:`JsonEvents` (events are JSON values, dicts with a ``"type"`` key get
that type; the functional API's default) and :class:`DataclassEvents` (events are dataclasses
registered with a type name and a version).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

import msgspec

from persistence.engine import Json
from persistence.errors import JournalIntegrityError

E = TypeVar("E")
T = TypeVar("T")

Upcaster = Callable[[Json], Json]
"""Turns the payload of version ``n`` of one event type into the payload of version ``n + 1``."""


class EncodedEvent(msgspec.Struct, frozen=True):
    """An event ready for the journal: its type name, schema version and JSON payload
    (a frozen ``msgspec.Struct``: one is built per persisted event, several times cheaper
    than a frozen dataclass)."""

    type: str
    version: int
    payload: Json


def _check_type_name(type_name: object) -> str:
    if not isinstance(type_name, str) or not type_name:
        raise ValueError(f"an event type name must be a non-empty string, got {type_name!r}")
    return type_name


def _check_version(version: object, what: str) -> int:
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {version!r}")
    return version


class Upcasters:
    """The upcasters of every event type: ``(type, n) -> step`` turning version n into n + 1."""

    def __init__(self) -> None:
        self._steps: dict[str, dict[int, Upcaster]] = {}

    def add(self, type_name: str, from_version: int, step: Upcaster) -> Upcasters:
        """Register ``step`` turning version ``from_version`` of ``type_name`` into the next."""
        _check_type_name(type_name)
        _check_version(from_version, "from_version")
        steps = self._steps.setdefault(type_name, {})
        if from_version in steps:
            raise ValueError(
                f"an upcaster from version {from_version} of {type_name!r} is already registered"
            )
        steps[from_version] = step
        return self

    def register(self, type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator form of :meth:`add`."""

        def decorate(step: Upcaster) -> Upcaster:
            self.add(type_name, from_version, step)
            return step

        return decorate

    def latest_version(self, type_name: str) -> int:
        """The version the registered steps lead to: 1 + the highest ``from_version``, or 1."""
        steps = self._steps.get(type_name)
        return max(steps) + 1 if steps else 1

    def upcast(self, type_name: str, version: int, payload: Json, to_version: int,
               where: str = "event") -> Json:
        """Turn ``payload`` from ``version`` into ``to_version``, or raise JournalIntegrityError."""
        if version == to_version:
            return payload
        if version > to_version:
            raise JournalIntegrityError(
                f"{where}: {type_name!r} version {version} is newer than the current version "
                f"{to_version} this code knows"
            )
        steps = self._steps.get(type_name, {})
        for current in range(version, to_version):
            step = steps.get(current)
            if step is None:
                known = ", ".join(f"{v}->{v + 1}" for v in sorted(steps)) or "none"
                raise JournalIntegrityError(
                    f"{where}: no upcaster turns {type_name!r} version {current} into version "
                    f"{current + 1} (stored version {version}, current {to_version}; "
                    f"registered: {known})"
                )
            try:
                payload = step(payload)
            except Exception as exc:
                raise JournalIntegrityError(
                    f"{where}: the upcaster of {type_name!r} from version {current} failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        return payload


class EventCodec(ABC, Generic[E]):
    """Encodes events for the journal and decodes stored ones, upcasting old versions first."""

    def __init__(self, upcasters: Upcasters | None = None) -> None:
        self.upcasters = upcasters if upcasters is not None else Upcasters()

    @abstractmethod
    def encode(self, event: E) -> EncodedEvent:
        """The type, current version and JSON payload of ``event``."""

    @abstractmethod
    def current_version(self, type_name: str) -> int:
        """The version of ``type_name`` this code writes and expects after upcasting."""

    @abstractmethod
    def from_payload(self, type_name: str, payload: Json) -> E:
        """Build an event from a payload already in the current version's shape."""

    def folds_as_written(self, event: E) -> bool:
        """Whether ``event``, once durable, may be folded as the command handler gave it.

        False (the default): the live state folds the stored payload decoded as replay
        decodes it, so it is the recovered state by construction. A codec returns True only
        for events that :meth:`decode` certainly gives back equal from their encoding (their
        values already JSON-normal), which saves decoding every event a second time.
        """
        return False

    def decode(self, type_name: str, version: int, payload: Json, where: str = "event") -> E:
        """Upcast a stored event to the current version and build it.

        Every failure is a :class:`JournalIntegrityError` naming ``where`` (persistence id and
        sequence number), so recovery fails loudly rather than replay a wrong event.
        """
        try:
            target = self.current_version(type_name)
        except JournalIntegrityError as exc:
            raise JournalIntegrityError(f"{where}: {exc}") from exc
        current = self.upcasters.upcast(type_name, version, payload, target, where)
        try:
            return self.from_payload(type_name, current)
        except JournalIntegrityError:
            raise
        except Exception as exc:
            raise JournalIntegrityError(
                f"{where}: cannot decode {type_name!r} (stored version {version}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc


class JsonEvents(EventCodec[Json]):
    """Events are JSON values; a dict with a string ``"type"`` is stored under that type name.

    Anything else is stored under ``default_type``. The version written is the one the
    registered upcasters lead to, so registering ``1 -> 2`` for a type makes new events v2.
    """

    def __init__(self, upcasters: Upcasters | None = None, default_type: str = "message") -> None:
        super().__init__(upcasters)
        self.default_type = _check_type_name(default_type)

    def type_of(self, event: Json) -> str:
        if isinstance(event, Mapping):
            name = event.get("type")
            if isinstance(name, str) and name:
                return name
        return self.default_type

    def encode(self, event: Json) -> EncodedEvent:
        type_name = self.type_of(event)
        return EncodedEvent(type_name, self.current_version(type_name), event)

    def current_version(self, type_name: str) -> int:
        return self.upcasters.latest_version(type_name)

    def from_payload(self, type_name: str, payload: Json) -> Json:
        return payload


class DataclassEvents(EventCodec[Any]):
    """Events are dataclasses registered with a type name and a version.

    The payload is a dict of the dataclass's fields, which must hold JSON values. A class that
    needs more (nested objects, tuples, datetimes) defines ``to_json(self) -> dict`` and a
    classmethod ``from_json(payload) -> Self``, which are then used instead.

    >>> events = DataclassEvents()
    >>> @events.register("ContactAdded", version=2)
    ... @dataclass(frozen=True)
    ... class ContactAdded:
    ...     id: str
    ...     name: str
    >>> @events.upcaster("ContactAdded", from_version=1)
    ... def _split(p): return {"id": p["id"], "name": p["full_name"]}
    """

    def __init__(self, upcasters: Upcasters | None = None) -> None:
        super().__init__(upcasters)
        self._by_name: dict[str, tuple[type[Any], int]] = {}
        self._by_class: dict[type[Any], tuple[str, int]] = {}

    def register(self, type_name: str, version: int = 1) -> Callable[[type[T]], type[T]]:
        """Class decorator: store instances under ``type_name`` at ``version``."""
        _check_type_name(type_name)
        _check_version(version, "version")

        def decorate(cls: type[T]) -> type[T]:
            if not dataclasses.is_dataclass(cls):
                raise TypeError(f"{cls.__qualname__} must be a dataclass to be an event type")
            if type_name in self._by_name:
                raise ValueError(f"event type {type_name!r} is already registered")
            if cls in self._by_class:
                raise ValueError(f"{cls.__qualname__} is already registered as an event type")
            self._by_name[type_name] = (cls, version)
            self._by_class[cls] = (type_name, version)
            return cls

        return decorate

    def upcaster(self, type_name: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: register a step turning ``from_version`` of ``type_name`` into the next."""
        return self.upcasters.register(type_name, from_version)

    def encode(self, event: Any) -> EncodedEvent:
        registered = self._by_class.get(type(event))
        if registered is None:
            raise TypeError(
                f"{type(event).__qualname__} is not a registered event type; decorate it with "
                f"@events.register(type_name, version)"
            )
        type_name, version = registered
        to_json = getattr(event, "to_json", None)
        if callable(to_json):
            payload = to_json()
        else:
            payload = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
        return EncodedEvent(type_name, version, payload)

    def current_version(self, type_name: str) -> int:
        registered = self._by_name.get(type_name)
        if registered is None:
            known = ", ".join(sorted(self._by_name)) or "none"
            raise JournalIntegrityError(
                f"unknown event type {type_name!r} (registered: {known})"
            )
        return registered[1]

    def from_payload(self, type_name: str, payload: Json) -> Any:
        cls = self._by_name[type_name][0]
        from_json = getattr(cls, "from_json", None)
        if callable(from_json):
            return from_json(payload)
        if not isinstance(payload, Mapping):
            raise TypeError(f"the payload must be a JSON object, got {type(payload).__name__}")
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(payload) - names)
        if unknown:
            raise TypeError(f"unknown field(s) {', '.join(unknown)} for {cls.__qualname__}")
        return cls(**payload)
