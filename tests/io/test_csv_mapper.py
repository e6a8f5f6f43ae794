"""Our CSV columns are mapped by position; the result must be the one the cell-by-name
mapping gave, for short, long, blank and multi-valued records and any header order."""

from __future__ import annotations

import random
from typing import Any

from contacts_cli.domain.model import EDITABLE_FIELDS, LIST_FIELDS
from contacts_cli.io.csv_import import _ours

HEADERS = [
    ["name", "emails", "phones", "company", "labels"],
    ["Labels", "Name", "id", "Email", "notes", "", "created_at", "Phone", "birthday"],
    list(EDITABLE_FIELDS),
    ["company", "name", "", ""],
]
CELLS = ["", " ", "\t", "Ada", " Ada ", "a;b", " a ; ;b ", ";", "x@y.org", "Zoë", "1;2;3"]


def by_name(header: list[str], record: list[str]) -> dict[str, Any]:
    aliases = {"email": "emails", "phone": "phones", "label": "labels"}
    cells = dict(zip(header, record, strict=False))
    data: dict[str, Any] = {}
    for cell, value in cells.items():
        field = aliases.get(cell.casefold(), cell.casefold())
        if field not in EDITABLE_FIELDS or not value.strip():
            if field == "name":
                data["name"] = ""
            continue
        data[field] = ([i.strip() for i in value.split(";") if i.strip()]
                       if field in LIST_FIELDS else value)
    data.setdefault("name", "")
    return data


def test_positional_mapping_equals_mapping_by_name() -> None:
    rng = random.Random(7)
    for header in HEADERS:
        mapper = _ours(header, 1)
        for _ in range(2000):
            record = [rng.choice(CELLS) for _ in range(rng.randint(0, len(header)))]
            assert mapper(record) == by_name(header, record), (header, record)
