"""The common case of an append's argument checks and payload encoding, made cheap.

:func:`~persistence.engine.check_append` and :func:`~persistence.engine.encode_json` build
messages and re-check text per event; for ASCII ids, types and tags without NUL and payloads
that encode to valid UTF-8, which is nearly every append, none of that can fail. These
functions answer only "certainly fine"; anything else goes through the contract's own
functions, so accepted values and errors are the same.
"""

from __future__ import annotations

import json.encoder
from collections.abc import Callable, Sequence
from typing import Any

from persistence.engine import MAX_SEQUENCE_NR, NewEvent

_c_make_encoder: Callable[..., Any] | None = getattr(json.encoder, "c_make_encoder", None)
# The settings of persistence.engine's encoder (ensure_ascii=False, allow_nan=False, compact
# separators), built once. No circular-reference markers: a cycle ends in RecursionError, and
# the caller then falls back to encode_json, which reports it.
_encode = (
    _c_make_encoder(
        None,
        json.JSONEncoder().default,
        json.encoder.encode_basestring,
        None,
        ":",
        ",",
        False,
        False,
        False,
    )
    if _c_make_encoder is not None
    else None
)


def plain_append(persistence_id: str, events: Sequence[NewEvent], expected: int) -> bool:
    """Whether ``check_append`` certainly accepts these arguments (False: ask it)."""
    if expected < 0 or expected + len(events) > MAX_SEQUENCE_NR:
        return False
    if len(events) == 1:  # many actors' single events: no lists to build
        event = events[0]
        joined = persistence_id + event.type
        if event.tags:
            joined += "".join(event.tags)
        return joined.isascii() and "\x00" not in joined
    texts = [event.type for event in events]
    texts.append(persistence_id)
    texts += [tag for event in events if event.tags for tag in event.tags]
    joined = "".join(texts)
    return joined.isascii() and "\x00" not in joined


def plain_payloads(payloads: list[Any]) -> str | None:
    """``encode_json(payloads)`` when it has no escaped NUL and is valid UTF-8, else ``None``
    (then ``encode_json`` decides, and reports any error). Non-ASCII text (names such as
    "Zoë") stays on the fast path: only a lone surrogate fails the UTF-8 check."""
    if _encode is None:
        return None
    try:
        text = "".join(_encode(payloads, 0))
    except Exception:  # RecursionError, TypeError, ValueError: encode_json names it
        return None
    if "\\u0000" in text:
        return None
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            return None
    return text
