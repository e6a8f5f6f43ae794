"""Compatibility only: ``row_encoder`` for ``contacts_cli/cli/imports.py``'s chunk key.

Delete this module once ``cli/imports.py`` builds its key encoder itself, as
``json.JSONEncoder(ensure_ascii=False, sort_keys=True, check_circular=False).encode`` (the
chunk keys already journaled need ``json.dumps``'s exact bytes). The import path's other
encoders moved: the server's outcome lines are orjson (``contacts_cli/http/routes.py``), the
client's request rows a prebuilt standard encoder (``contacts_cli/backends/http.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def row_encoder(
    *, separators: tuple[str, str] = (", ", ": "), sort_keys: bool = False
) -> Callable[[Any], str]:
    """``json.dumps(value, ensure_ascii=False, separators=separators, sort_keys=sort_keys)``
    with the encoder built once, without the cycle check."""
    return json.JSONEncoder(ensure_ascii=False, separators=separators, sort_keys=sort_keys,
                            check_circular=False).encode
