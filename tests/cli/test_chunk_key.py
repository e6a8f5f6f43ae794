"""Chunk keys must not change between versions: a re-run of an interrupted import made by
an older release must recognise the rows it stored."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from contacts_cli.backends.http import _ROW_JSON
from contacts_cli.cli.imports import KEY_VERSION, chunk_key


def original_chunk_key(index: int, policy: str, rows: list[tuple[int, dict[str, Any]]]) -> str:
    digest = hashlib.sha256(f"{KEY_VERSION}\n{index}\n{policy}\n".encode())
    for line, data in rows:
        digest.update(f"{line}\t".encode())
        digest.update(json.dumps(data, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    return "import-" + digest.hexdigest()[:48]


def test_chunk_keys_are_those_of_the_row_by_row_digest() -> None:
    rows = [(2, {"name": "Zoë", "emails": ["z@e.org"], "company": "\u00c5 \"q\" \\ \n"}),
            (3, {"phones": ["+1 415"], "name": "B", "labels": ["a", "b"]}), (9, {"name": ""}),
            (11, {"name": 1.5, "x": None, "y": True, "z": {"b": 1, "a": [1e100, -0.0, 2**70]},
                  "n": float("nan"), "\u00e9": "\ud7ff\U0001f600"})]
    for index, policy, chunk in ((0, "skip", rows), (7, "update", rows[1:]), (1, "create", [])):
        assert chunk_key(index, policy, chunk) == original_chunk_key(index, policy, chunk)


def test_client_rows_are_encoded_as_json_dumps_encodes_them() -> None:
    for row in ({"name": "Zoë", "emails": ["z@e.org"], "n": None, "x": 1.5, "y": True},
                {"b": {"a": [1, 2**70, float("nan")]}, "\u00e9": "\ud7ff\U0001f600\n\""}, {}):
        assert _ROW_JSON(row) == json.dumps(row, ensure_ascii=False)
