"""JSON decoding with a bound on nesting, so hostile input cannot make the decoder recurse.

``json`` decodes nested arrays and objects recursively: ten thousand ``[`` raise
``RecursionError`` (or worse, in the pure-Python decoder, exhaust the C stack). The depth is
checked *before* decoding, from the brackets alone; strings are skipped first, so brackets
inside them do not count. Contacts are two levels deep, so :data:`MAX_JSON_DEPTH` only ever
refuses hostile or broken input.

The check is an upper bound on what the decoder will recurse into: up to the first syntax
error the decoder's depth at any point is the running count of open brackets, which is what
is measured here. Text with few brackets (every real contact) skips the scan altogether.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from contacts_cli.io.errors import JsonTooDeep

MAX_JSON_DEPTH = 64

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
"""A JSON string; an unterminated one runs to the end (the decoder refuses it anyway)."""
_NOT_BRACKET = re.compile(r"[^][{}]+")
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[][{}]|"', re.DOTALL)
"""A whole string, a bracket, or a lone ``"`` (a string the text ends inside)."""
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_DECODER = json.JSONDecoder()


def loads_bounded(
    text: str, *, max_depth: int = MAX_JSON_DEPTH, decoder: json.JSONDecoder = _DECODER
) -> Any:
    """``decoder.decode(text)`` once ``text`` is known to nest at most ``max_depth`` levels.

    Raises :class:`~contacts_cli.io.errors.JsonTooDeep` (a ``ValueError``) for deeper text,
    and whatever ``decoder`` raises (``json.JSONDecodeError``) for malformed text.
    """
    if text.count("[") + text.count("{") > max_depth and nests_deeper(text, max_depth):
        raise JsonTooDeep(max_depth)
    return decoder.decode(text)


def nests_deeper(text: str, max_depth: int = MAX_JSON_DEPTH, start: int = 0) -> bool:
    """Whether more than ``max_depth`` brackets are ever open at once in ``text[start:]``
    (strings skipped): a bound for everything a decoder reads from ``start`` until its first
    syntax error. Free for text with few brackets; otherwise linear, in C-speed regex
    substitutions and ``accumulate``.
    """
    if text.count("[", start) + text.count("{", start) <= max_depth:
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text[start:] if start else text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > max_depth


def value_end(text: str, start: int) -> int | None:
    """Where the array or object opening at ``text[start]`` ends, or None if ``text`` ends
    first. Brackets are counted, not matched by kind, and never recursed into: this finds
    the end of a value too deep to decode. One regex match per bracket and string.
    """
    depth = 0
    for match in _TOKEN.finditer(text, start):
        token = match.group()
        if token == '"':
            return None
        step = _STEP.get(token)
        if step is None:
            continue
        depth += step
        if depth <= 0:
            return match.end()
    return None
