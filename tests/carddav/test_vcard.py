"""vCard in and out without HTTP: what a client stores comes back, the model's fields are
read from the card, a change made elsewhere replaces only the lines it concerns, and the two
versions convert into each other."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import vobject

from contacts_cli.carddav.vcard import CardError, parse_card, render_card
from contacts_cli.carddav.vcard_versions import convert_line, fold
from contacts_cli.domain import (
    CreateContact,
    UpdateContact,
    decide,
    evolve,
    replay,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

RICH = "\r\n".join([
    "BEGIN:VCARD", "VERSION:4.0", "PRODID:-//Example//Client//EN", "UID:urn:uuid:1234",
    "KIND:individual", "FN:Ada Lovelace", "N:Lovelace;Ada;Augusta;Countess;",
    "NICKNAME:Enchantress of Numbers",
    "item1.EMAIL;TYPE=work;PREF=1:ada@example.org", "item1.X-ABLABEL:_$!<Work>!$_",
    "EMAIL;TYPE=home:ADA@Home.example.org", "EMAIL:not an email",
    "TEL;VALUE=uri;TYPE=cell:tel:+1-202-555-0123", "TEL;TYPE=work:*31#",
    "ADR;TYPE=home;LABEL=\"12 St James's Sq\\nLondon\":;;12 St James's Sq;London;;SW1Y;UK",
    "ADR;TYPE=work:;;Analytical Engine Works;London;;;UK",
    "ORG:Analytical Engines;Research", "TITLE:Countess", "BDAY:18151210",
    "ANNIVERSARY:18350708", "NOTE:First\\, programmer", "CATEGORIES:math,poetry",
    "PHOTO:data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk",
    "URL:https://example.org/ada", "X-SPOUSE:William King", "REV:20200101T000000Z",
    "END:VCARD", "",
])


def stored(card: str, *, region: str = "US") -> object:
    parsed = parse_card(card, region=region)
    state = replay([])
    for event in decide(state, CreateContact(parsed.fields, parsed.card, "ada"), NOW,
                        lambda: "unused", region=region):
        evolve(state, event)
    return state


def lines(card: str) -> list[str]:
    unfolded = card.replace("\r\n ", "")
    return [line for line in unfolded.split("\r\n") if line and not line.startswith("REV:")]


def test_the_fields_are_read_from_the_card_and_the_rest_is_kept() -> None:
    parsed = parse_card(RICH, region="US")
    assert parsed.fields == {
        "name": "Ada Lovelace", "emails": ["ada@example.org", "ADA@home.example.org"],
        "phones": ["+12025550123"], "labels": ["math", "poetry"],
        "company": "Analytical Engines", "title": "Countess",
        "address": "12 St James's Sq, London, SW1Y, UK", "birthday": "1815-12-10",
        "notes": "First, programmer",
    }
    unmapped = [cl.line for cl in parsed.card.lines if not cl.field]
    assert "EMAIL:not an email" in unmapped and "TEL;TYPE=work:*31#" in unmapped
    assert "ADR;TYPE=work:;;Analytical Engine Works;London;;;UK" in unmapped


def test_what_a_client_stores_comes_back_line_for_line() -> None:
    state = stored(RICH)
    contact = state.get("ada")  # type: ignore[attr-defined]
    served = render_card(contact, "4.0")
    assert lines(served) == lines(RICH)  # in the client's order; only REV is written anew
    assert served.count("REV:") == 1
    card = vobject.readOne(served)
    assert card.fn.value == "Ada Lovelace"


def test_a_change_made_elsewhere_replaces_only_its_own_lines() -> None:
    state = stored(RICH)
    for event in decide(state, UpdateContact("ada", {
            "name": "Ada King", "emails": ["ada@example.org", "new@example.org"],
            "title": None, "labels": ["math"]}), NOW, lambda: "x"):
        evolve(state, event)
    served = lines(render_card(state.get("ada"), "4.0"))  # type: ignore[attr-defined]
    assert "item1.EMAIL;TYPE=work;PREF=1:ada@example.org" in served  # kept, with its type
    assert "EMAIL;TYPE=home:ADA@Home.example.org" not in served  # removed elsewhere
    assert "EMAIL:new@example.org" in served and "FN:Ada King" in served
    assert "N:King;Ada;;;" in served and not any(x.startswith("N:Lovelace") for x in served)
    assert "TITLE:Countess" not in served and "CATEGORIES:math" in served
    assert "X-SPOUSE:William King" in served and "TEL;TYPE=work:*31#" in served
    assert sum(x.startswith("FN:") for x in served) == 1


def test_a_contact_without_a_card_is_a_complete_card_in_either_version() -> None:
    state = replay([])
    for event in decide(state, CreateContact({
            "name": "Grace Hopper", "emails": ["grace@navy.mil"], "phones": ["+12025550199"],
            "birthday": "--12-09", "address": "Arlington\nVA", "labels": ["navy"]}),
            NOW, lambda: "5b3f7a3e-1111-4222-8333-444455556666"):
        evolve(state, event)
    contact = state.get("5b3f7a3e-1111-4222-8333-444455556666")
    for version in ("3.0", "4.0"):
        text = render_card(contact, version)  # type: ignore[arg-type]
        card = vobject.readOne(text)
        assert card.version.value == version and card.fn.value == "Grace Hopper"
        assert card.uid.value == "urn:uuid:5b3f7a3e-1111-4222-8333-444455556666"
        reparsed = parse_card(text, region="US").fields
        assert reparsed["emails"] == ["grace@navy.mil"] and reparsed["phones"] == [
            "+12025550199"]
        assert reparsed["birthday"] == "--12-09" and reparsed["labels"] == ["navy"]


@pytest.mark.parametrize(("line", "source", "target", "expected"), [
    ("PHOTO;ENCODING=b;TYPE=JPEG:QUJD", "3.0", "4.0", "PHOTO:data:image/jpeg;base64,QUJD"),
    ("PHOTO:data:image/png;base64,QUJD", "4.0", "3.0", "PHOTO;ENCODING=b;TYPE=PNG:QUJD"),
    ("PHOTO;VALUE=uri:https://x.org/a.jpg", "3.0", "4.0", "PHOTO:https://x.org/a.jpg"),
    ("PHOTO:https://x.org/a.jpg", "4.0", "3.0", "PHOTO;VALUE=uri:https://x.org/a.jpg"),
    ("TEL;TYPE=cell,pref:+1555", "3.0", "4.0", "TEL;TYPE=cell;PREF=1:+1555"),
    ("TEL;PREF=1;TYPE=cell:+1555", "4.0", "3.0", "TEL;TYPE=cell,pref:+1555"),
    ("TEL;VALUE=uri:tel:+1555;ext=7", "4.0", "3.0", "TEL:+1555 ext. 7"),
    ("KIND:group", "4.0", "3.0", "X-ADDRESSBOOKSERVER-KIND:group"),
    ("X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:1", "3.0", "4.0", "MEMBER:urn:uuid:1"),
    ("TEL;CELL:+1555", "3.0", "4.0", "TEL;TYPE=CELL:+1555"),
    ("BDAY:1815-12-10", "3.0", "4.0", "BDAY:18151210"),
    ("BDAY:18151210", "4.0", "3.0", "BDAY:1815-12-10"),
    ("NOTE;CHARSET=UTF-8:x", "3.0", "4.0", "NOTE:x"),
    ("item1.X-ABLabel:work", "3.0", "4.0", "item1.X-ABLabel:work"),
])
def test_lines_convert_between_versions(line: str, source: str, target: str,
                                        expected: str) -> None:
    assert convert_line(line, source, target) == expected


def test_folding_keeps_utf8_characters_whole() -> None:
    line = "NOTE:" + "é" * 100
    folded = fold(line)
    assert all(len(part.encode()) <= 75 for part in folded.split("\r\n"))
    assert folded.replace("\r\n ", "") == line


@pytest.mark.parametrize(("card", "reason"), [
    ("", "empty"),
    ("BEGIN:VCARD\r\nFN:x\r\nEND:VCARD\r\n", "no VERSION"),
    ("BEGIN:VCARD\r\nVERSION:4.0\r\nthis is no content line\r\nEND:VCARD\r\n", "content line 3"),
    ("FN:x\r\n", "must start with BEGIN:VCARD"),
])
def test_a_bad_card_says_what_and_where(card: str, reason: str) -> None:
    with pytest.raises(CardError, match=reason):
        parse_card(card)
