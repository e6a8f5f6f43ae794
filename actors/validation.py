"""Validation of actor names and durations, shared by every entry point of the runtime.

Durations are checked everywhere they are accepted (query timeouts, ``shutdown_after``,
backoff settings): nact wraps large durations to negative ones, so its timers fire at once.
Here a duration is a real number of seconds, finite and positive, or it is refused.
"""

from __future__ import annotations

import math
import re
from numbers import Real

from actors.errors import InvalidActorName

NAME_RULE = (
    "1 to 128 characters among ASCII letters, digits and _ - . @ : + = ~, "
    "beginning with a letter, a digit or _"
)
"""The naming rule of actors and systems; ``/`` separates path segments, so it is never allowed."""

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@:+=~-]{0,127}\Z")


def validate_name(name: object, what: str = "actor name") -> str:
    """Return ``name`` if it follows :data:`NAME_RULE`, else raise :class:`InvalidActorName`."""
    if not isinstance(name, str):
        raise InvalidActorName(f"{what} must be a str, got {type(name).__qualname__}")
    if _NAME.match(name) is None:
        raise InvalidActorName(f"invalid {what} {name!r}: use {NAME_RULE}")
    return name


def validate_duration(value: object, what: str) -> float:
    """Return ``value`` as float seconds if it is finite and positive, else raise ValueError."""
    kind = type(value)
    if kind is not float and kind is not int and (isinstance(value, bool)
                                                  or not isinstance(value, Real)):
        raise ValueError(f"{what} must be a number of seconds, got {value!r}")
    seconds = float(value)  # type: ignore[arg-type]
    if not 0 < seconds < math.inf:
        raise ValueError(f"{what} must be positive and finite, got {value!r}")
    return seconds
