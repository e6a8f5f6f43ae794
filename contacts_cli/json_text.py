"""JSON encoders built once, for per-row encoding on the import path.

``json.dumps`` builds a new encoder on every call, which costs more than encoding a small
row; an import encodes thousands of rows per chunk (the client's request body, the chunk's
idempotency key, the server's outcome lines).
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from functools import partial
from typing import Any

_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)


def row_encoder(
    *, separators: tuple[str, str] = (", ", ": "), sort_keys: bool = False
) -> Callable[[Any], str]:
    """A function giving ``json.dumps(value, ensure_ascii=False, separators=separators,
    sort_keys=sort_keys)``, without its cycle check (rows read from a file or a request have
    no cycles; one would end in RecursionError)."""
    if _c_make_encoder is None:
        return partial(json.dumps, ensure_ascii=False, separators=separators,
                       sort_keys=sort_keys)
    item_separator, key_separator = separators
    encode = _c_make_encoder(None, json.JSONEncoder().default, json.encoder.encode_basestring,
                             None, key_separator, item_separator, sort_keys, False, True)

    def dumps(value: Any) -> str:
        return "".join(encode(value, 0))

    return dumps
