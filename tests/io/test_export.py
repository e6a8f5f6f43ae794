"""Exports: each format streams, and importing an export gives the same contacts back."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest

from contacts_cli.domain import (
    Contact,
    ContactCreated,
    ContactsState,
    ImportContacts,
    ImportRow,
    evolve,
    plan_import,
    validate_new,
)
from contacts_cli.io import (
    FORMATS,
    export_contacts,
    import_chunks,
    read_contacts,
    write_csv,
    write_json,
    write_vcards,
)
from contacts_cli.io.export import vcard_lines

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

RAW = [
    {
        "name": "Ada Lovelace",
        "emails": ["ada@x.org", "Ada.King@Work.org"],
        "phones": ["+44 20 7946 0958", "(202) 555-0123 ext. 45"],
        "company": "Analytical Engines, Ltd; R&D",
        "title": "Countess \\ Mathematician",
        "address": "12 St James's Sq\nLondon; SW1Y 4JH, UK",
        "birthday": "1815-12-10",
        "notes": 'Multi-line\nnote with "quotes", commas; semicolons and a backslash \\'
        + " and a long tail " * 10,
        "labels": ["Math, logic", "Friends"],
    },
    {
        "name": "Zoë Ünal 李小龍",
        "birthday": "--02-29",
        "labels": ["ünïcødé"],
        "address": "東京都" * 40,
    },
    {"name": "=cmd|' /C calc'!A0", "notes": "\u2028 unusual separator"},
]


def contacts() -> list[Contact]:
    state = ContactsState()
    for i, raw in enumerate(RAW):
        evolve(
            state, ContactCreated(f"00000000-0000-4000-8000-00000000000{i}", validate_new(raw), T0)
        )
    return list(state)


def reimport(text: str, fmt: str) -> list[dict[str, object]]:
    rows = list(read_contacts(io.StringIO(text), filename=f"export.{fmt}"))
    assert all(r.ok for r in rows), [r.errors for r in rows if not r.ok]
    return [validate_new(r.data or {}) for r in rows]


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip(fmt: str) -> None:
    originals = contacts()
    out = io.StringIO(newline="")
    assert export_contacts(originals, out, fmt) == len(originals)  # type: ignore[arg-type]
    assert reimport(out.getvalue(), fmt) == [validate_new(c.editable()) for c in originals]


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_through_the_import_plan(fmt: str) -> None:
    out = io.StringIO(newline="")
    export_contacts(contacts(), out, fmt)  # type: ignore[arg-type]
    state = ContactsState()
    counter = iter(range(100))
    for good, bad in import_chunks(read_contacts(io.StringIO(out.getvalue()), fmt), 2):  # type: ignore[arg-type]
        assert bad == []
        plan = plan_import(state, ImportContacts(good), T0, lambda: f"n{next(counter)}")
        for event in plan.events:
            evolve(state, event)
    assert [c.editable() for c in state] == [c.editable() for c in contacts()]


def test_empty_exports() -> None:
    for fmt in FORMATS:
        out = io.StringIO()
        assert export_contacts([], out, fmt) == 0
        assert list(read_contacts(io.StringIO(out.getvalue()), fmt)) == []
    out = io.StringIO()
    write_json([], out)
    assert json.loads(out.getvalue()) == []


def test_csv_shape() -> None:
    out = io.StringIO(newline="")
    write_csv(contacts()[1:2], out)
    assert out.getvalue() == (
        "name,emails,phones,company,title,address,birthday,notes,labels\r\n"
        "Zoë Ünal 李小龍,,,,," + "東京都" * 40 + ",--02-29,,ünïcødé\r\n"
    )


def test_vcard_shape_and_folding() -> None:
    lines = vcard_lines(contacts()[0])
    assert lines[:4] == [
        "BEGIN:VCARD",
        "VERSION:4.0",
        "UID:urn:uuid:00000000-0000-4000-8000-000000000000",
        "FN:Ada Lovelace",
    ]
    assert "TEL;VALUE=uri:tel:+12025550123;ext=45" in lines
    assert "ORG:Analytical Engines\\, Ltd\\; R&D" in lines
    assert "BDAY:18151210" in lines
    assert "CATEGORIES:Math\\, logic,Friends" in lines
    assert "REV:20260301T093000Z" in lines
    out = io.StringIO(newline="")
    write_vcards(contacts(), out)
    for physical in out.getvalue().split("\r\n"):
        assert len(physical.encode()) <= 75
    assert "BDAY:--0229" in out.getvalue()


def test_json_export_is_full_and_valid() -> None:
    out = io.StringIO()
    write_json(contacts(), out)
    data = json.loads(out.getvalue())
    assert data[0]["id"] == "00000000-0000-4000-8000-000000000000"
    assert data[0]["created_at"] == "2026-03-01T09:30:00.000000+00:00"
    assert data[0]["version"] == 1


def test_import_chunks_split_good_and_bad_rows() -> None:
    text = "name,emails\nA,a@x.org\nB,b@x.org,extra\nC,\n"
    chunks = list(import_chunks(read_contacts(io.StringIO(text), "csv"), 2))
    assert [([r.ref for r in good], [o.ref for o in bad]) for good, bad in chunks] == [
        ([2], [3]),
        ([4], []),
    ]
    assert chunks[0][1][0].status == "rejected"
    assert isinstance(chunks[0][0][0], ImportRow)
