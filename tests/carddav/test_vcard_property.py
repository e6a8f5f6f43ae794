"""Hostile cards: whatever the bytes, parsing either gives a card the domain accepts or
raises CardError (a 400 with a reason), and serving the stored card never fails."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from contacts_cli.carddav.filters import CardFilter, PropFilter, TextMatch
from contacts_cli.carddav.vcard import CardError, parse_card, render_card
from contacts_cli.domain import CreateContact, decide, evolve, replay

NAMES = ["FN", "N", "EMAIL", "TEL", "ADR", "ORG", "TITLE", "BDAY", "NOTE", "CATEGORIES",
         "PHOTO", "X-FOO", "item1.EMAIL", "UID", "KIND"]
PARAMS = ["", ";TYPE=work", ";TYPE=cell,pref", ";VALUE=uri", ";PREF=1", ';X-Q="a:b;c"',
          ";ENCODING=b;TYPE=JPEG", ";CELL"]
VALUES = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@st.composite
def cards(draw: st.DrawFn) -> str:
    lines = ["BEGIN:VCARD", f"VERSION:{draw(st.sampled_from(['3.0', '4.0']))}"]
    for _ in range(draw(st.integers(0, 12))):
        value = draw(VALUES).replace("\r", "").replace("\n", "")
        lines.append(f"{draw(st.sampled_from(NAMES))}{draw(st.sampled_from(PARAMS))}:{value}")
    if draw(st.booleans()):
        lines.append("END:VCARD")
    return "\r\n".join(lines) + "\r\n"


@settings(max_examples=300, deadline=None)
@given(cards())
def test_any_card_parses_or_is_refused_with_a_reason(text: str) -> None:
    try:
        parsed = parse_card(text, region="US")
    except CardError as error:
        assert str(error)
        return
    state = replay([])
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for event in decide(state, CreateContact(parsed.fields, parsed.card, "c1"), now,
                        lambda: "x", region="US"):
        evolve(state, event)
    contact = state.get("c1")
    assert contact is not None
    for version in ("3.0", "4.0"):
        served = render_card(contact, version)
        assert parse_card(served, region="US").fields["name"] == contact.name
        CardFilter((PropFilter("FN", texts=(TextMatch("a"),)),), names=frozenset({"FN"})
                   ).matches(served)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_escapes_as_another_error(text: str) -> None:
    try:
        parsed = parse_card(text)
    except CardError as error:
        assert str(error)  # the reason a client is given
    else:
        assert parsed.fields["name"]
