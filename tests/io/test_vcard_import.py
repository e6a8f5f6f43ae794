"""vCard import: 3.0 and 4.0, many cards, folding, escapes, bad cards with their lines."""

from __future__ import annotations

import io

import pytest

from contacts_cli.domain import validate_new
from contacts_cli.io import ParsedRow, read_vcards


def parse(text: str) -> list[ParsedRow]:
    return list(read_vcards(io.StringIO(text)))


V3 = (
    "BEGIN:VCARD\r\n"
    "VERSION:3.0\r\n"
    "N:Lovelace;Ada;;Lady;\r\n"
    "FN:Ada Lovelace\r\n"
    "ORG:Analytical Engines\\, Ltd;R&D\r\n"
    "TITLE:Countess\r\n"
    "EMAIL;TYPE=INTERNET,HOME:ada@x.org\r\n"
    "EMAIL;TYPE=INTERNET,WORK:ada@work.org\r\n"
    "TEL;TYPE=CELL:+44 20 7946 0958\r\n"
    "ADR;TYPE=HOME:;;12 St James's Sq;London;;SW1Y 4JH;UK\r\n"
    "BDAY:1815-12-10\r\n"
    "NOTE:First line\\nsecond\\, with comma and a very long text that will be folded by\r\n"
    "  the writer\r\n"
    "CATEGORIES:Math,Friends\r\n"
    "END:VCARD\r\n"
)

V4 = (
    "BEGIN:VCARD\n"
    "VERSION:4.0\n"
    "FN:Zoë Ünal\n"
    "TEL;VALUE=uri;TYPE=cell:tel:+1-202-555-0123;ext=45\n"
    "EMAIL:zoe@example.org\n"
    "BDAY:--0229\n"
    "END:VCARD\n"
)


def test_vcard_3_and_4_in_one_file() -> None:
    rows = parse("\ufeff" + V3 + V4)
    assert [r.line for r in rows] == [1, 16]
    assert rows[0].data == {
        "name": "Ada Lovelace",
        "emails": ["ada@x.org", "ada@work.org"],
        "phones": ["+44 20 7946 0958"],
        "company": "Analytical Engines, Ltd",
        "title": "Countess",
        "address": "12 St James's Sq, London, SW1Y 4JH, UK",
        "birthday": "1815-12-10",
        "notes": "First line\nsecond, with comma and a very long text that will be folded by "
        "the writer",
        "labels": ["Math", "Friends"],
    }
    assert rows[1].data == {
        "name": "Zoë Ünal",
        "emails": ["zoe@example.org"],
        "phones": ["+1-202-555-0123 ext. 45"],
        "birthday": "--0229",
    }
    v4 = validate_new(rows[1].data)
    assert v4["phones"] == ("+12025550123 ext. 45",)
    assert v4["birthday"] == "--02-29"


def test_name_falls_back_to_n_then_org_then_email() -> None:
    cards = (
        "BEGIN:VCARD\nVERSION:3.0\nN:Doe;John;Q;Dr.;Jr.\nEND:VCARD\n"
        "BEGIN:VCARD\nVERSION:3.0\nORG:Acme\nEMAIL:x@acme.org\nEND:VCARD\n"
        "BEGIN:VCARD\nVERSION:4.0\nEMAIL:x@acme.org\nEND:VCARD\n"
    )
    assert [r.data and r.data["name"] for r in parse(cards)] == [
        "Dr. John Q Doe Jr.",
        "Acme",
        "x@acme.org",
    ]


def test_bad_cards_report_their_start_line_and_the_rest_is_read() -> None:
    text = (
        "BEGIN:VCARD\nVERSION:3.0\nFN:Good\nEND:VCARD\n"  # 1-4
        "\n"  # 5
        "stray text\nmore stray\n"  # 6-7
        "BEGIN:VCARD\nVERSION:3.0\nFN;BROKEN\nEND:VCARD\n"  # 8-11
        "BEGIN:VCARD\r\nVERSION:3.0\rFN:Also good\r\nEND:VCARD\r\n"  # 12-15
        "BEGIN:VCARD\nVERSION:3.0\nFN:Unclosed\n"  # 16-18
    )
    rows = parse(text)
    assert [(r.line, r.ok) for r in rows] == [
        (1, True),
        (6, False),
        (8, False),
        (12, True),
        (16, False),
    ]
    assert rows[1].errors[0].message.startswith("text outside a vCard")
    assert rows[2].errors[0].message.startswith("cannot parse vCard")
    assert rows[2].errors[0].message == "cannot parse vCard: Failed to parse line: FN;BROKEN"
    assert rows[3].data == {"name": "Also good"}
    assert rows[4].errors[0].message == "card is not closed with END:VCARD"


def test_empty_file() -> None:
    assert parse("") == []
    assert parse("\n\n") == []


def test_oversized_card_is_reported_and_the_next_card_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("contacts_cli.io.vcard_import.MAX_CARD_CHARS", 200)
    photo = "".join(f" {'A' * 70}\n" for _ in range(10))
    text = (
        f"BEGIN:VCARD\nVERSION:3.0\nFN:Big\nPHOTO;ENCODING=b;TYPE=JPEG:AAAA\n{photo}END:VCARD\n"
        "BEGIN:VCARD\nVERSION:3.0\nFN:Small\nEND:VCARD\n"
    )
    rows = parse(text)
    assert [(r.line, r.ok) for r in rows] == [(1, False), (16, True)]
    assert rows[0].errors[0].message == "card is larger than 200 characters"
