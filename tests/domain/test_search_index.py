"""The search index answers exactly what a scan of every contact answers (issue 10).

The reference is the search as it was before the index: walk the contacts in name order and
keep those :func:`~contacts_cli.domain.queries.matches` accepts, ``limit`` a page. Hypothesis
generates contacts from a small alphabet (so terms often hit, across values, across fields
and across contacts), writes between searches (so the index catches up with added, renamed,
changed and removed contacts, splits and empties blocks, and gets rebuilt after many
writes) and pages through the answers. Blocks are made tiny so that all of that happens
with a few contacts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from unittest import mock

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from contacts_cli.domain import Contact, ContactsState, ValidationError, parse_query, search_steps
from contacts_cli.domain import search_index as search_index_module
from contacts_cli.domain.queries import Page, decode_cursor, encode_cursor, matches, search_contacts
from contacts_cli.domain.state import sort_key
from contacts_cli.service.slices import run_in_slices

# Letters whose folding changes length or joins (ß -> ss, ﬁ -> fi, İ -> i̇, e + ◌́ -> é), the
# value separator NUL and the index's contact separator \x01, digits and phone punctuation.
ALPHABET = "abAB ßsﬁfİiéeΣ\u03c3ς\u0301\x00\x0112+-()"
text = st.text(ALPHABET, max_size=6)
values = st.lists(st.text(ALPHABET, min_size=1, max_size=5), max_size=3).map(tuple)
FIELDS = st.fixed_dictionaries({
    "name": text,
    "emails": values,
    "phones": values,
    "company": st.none() | text,
    "notes": st.none() | text,
    "labels": values,
})
WORD = st.text("abABßsﬁfİiéΣ\u03c3ς\u0301\x00\x0112+-()", min_size=1, max_size=3)
PREFIX = st.sampled_from(["", "", "", "name:", "email:", "phone:", "org:", "notes:", "label:"])
QUERY = st.lists(st.tuples(PREFIX, WORD).map("".join), min_size=1, max_size=3).map(" ".join)

Operation = tuple[str, int, dict[str, object] | str, int]
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.just(0), FIELDS, st.just(0)),
        st.tuples(st.just("update"), st.integers(0, 99), FIELDS, st.just(0)),
        st.tuples(st.just("update"), st.integers(0, 99), FIELDS.map(
            lambda fields: {k: v for k, v in fields.items() if k != "name"}), st.just(0)),
        st.tuples(st.just("remove"), st.integers(0, 99), st.just(""), st.just(0)),
        st.tuples(st.just("search"), st.just(0), QUERY, st.integers(1, 4)),
    ),
    max_size=40,
)


@pytest.fixture(autouse=True, params=[4, 10**9], ids=["rebuilt-after-many-writes", "caught-up"])
def tiny_blocks(request: pytest.FixtureRequest) -> Iterator[None]:
    with mock.patch.object(search_index_module, "BLOCK", 2), \
            mock.patch.object(search_index_module, "_SORT_CHUNK", 3), \
            mock.patch.object(search_index_module, "REBUILD_SHARE", request.param):
        yield


def scan(state: ContactsState, query: str, limit: int, cursor: str | None) -> Page:
    """The search before the index: every contact in name order, tested one by one."""
    terms = parse_query(query)
    after = decode_cursor(cursor) if cursor else None
    ordered = sorted(state, key=sort_key)
    hits = [c for c in ordered if (after is None or sort_key(c) > after) and matches(c, terms)]
    items = hits[:limit]
    return Page(items, encode_cursor(sort_key(items[-1])) if len(hits) > limit else None)


def pages(state: ContactsState, query: str, limit: int, search: object) -> list[Page]:
    found: list[Page] = []
    cursor: str | None = None
    while True:
        page = search(state, query, limit, cursor)  # type: ignore[operator]
        found.append(page)
        cursor = page.next_cursor
        if cursor is None or len(found) > 50:
            return found


def apply(state: ContactsState, operation: Operation, serial: int) -> None:
    kind, which, fields, _ = operation
    contacts = list(state)
    if kind == "add":
        assert isinstance(fields, dict)
        state.add(Contact(f"c{serial:03d}", **fields))  # type: ignore[arg-type]
    elif kind == "update" and contacts:  # without a name: the contact keeps its place
        assert isinstance(fields, dict)
        state.put(replace(contacts[which % len(contacts)], **fields))
    elif kind == "remove" and contacts:
        state.discard(contacts[which % len(contacts)].id)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPERATIONS)
def test_the_index_agrees_with_a_scan_through_writes(operations: list[Operation]) -> None:
    state = ContactsState()
    for serial, operation in enumerate(operations):
        if operation[0] != "search":
            apply(state, operation, serial)
            continue
        query, limit = operation[2], operation[3]
        assert isinstance(query, str)
        try:
            expected = pages(state, query, limit, scan)
        except ValidationError:
            assume(False)
        assert pages(state, query, limit, search_contacts) == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(FIELDS, max_size=25), QUERY, st.integers(1, 5))
def test_a_search_of_a_fresh_state_agrees_with_a_scan(
    contacts: list[dict[str, object]], query: str, limit: int
) -> None:
    state = ContactsState()
    for serial, fields in enumerate(contacts):
        state.add(Contact(f"c{serial:03d}", **fields))  # type: ignore[arg-type]
    try:
        expected = pages(state, query, limit, scan)
    except ValidationError:
        assume(False)
    assert pages(state, query, limit, search_contacts) == expected


@pytest.mark.parametrize(("query", "expected"), [
    ("a\x01b", ["c0"]),  # inside one contact's name: the separator is only text there
    ("a\x01", ["c0"]),
    ("\x01", ["c0"]),
    ("b\x01", []),  # the end of "a\x01b", then the separator before "bx"
    ("b\x01b", []),
    ("x\x01x", []),
    ("x", ["c1", "c2"]),
    ("name:\x01", ["c0"]),  # a name's text is followed by the next name's at once
    ("name:b\x01", []),
    ("name:b\x01b", []),
])
def test_a_hit_across_two_contacts_texts_does_not_count(query: str, expected: list[str]) -> None:
    state = ContactsState()
    for serial, name in enumerate(["a\x01b", "bx", "xa"]):  # in name order, one block
        state.add(Contact(f"c{serial}", name))
    with mock.patch.object(search_index_module, "BLOCK", 8):
        assert [c.id for c in search_contacts(state, query, limit=10).items] == expected


def test_a_change_that_keeps_the_place_in_name_order_is_searched() -> None:
    state = ContactsState()
    for i in range(6):
        state.add(Contact(f"c{i}", f"n{i}", notes="old"))
    assert len(search_contacts(state, "notes:old").items) == 6
    contact = state.get("c3")
    assert contact is not None
    state.put(replace(contact, notes="new"))
    assert [c.id for c in search_contacts(state, "notes:new").items] == ["c3"]
    assert len(search_contacts(state, "notes:old").items) == 5


def test_many_writes_make_the_next_search_build_a_new_index() -> None:
    search_index_module.REBUILD_SHARE = 4  # (the fixture restores it)
    state = ContactsState()
    for i in range(10):
        state.add(Contact(f"c{i}", f"person {i}"))
    assert [c.id for c in search_contacts(state, "\"person 1\"").items] == ["c1"]
    first = state.search_index
    assert first is not None and not first.outdated
    for i in range(10, 30):
        state.add(Contact(f"c{i}", f"person {i}"))
    assert first.outdated
    assert [c.id for c in search_contacts(state, "\"person 1\"", limit=20).items] == [
        "c1", *(f"c{i}" for i in range(10, 20))
    ]
    assert state.search_index is not first


async def test_a_search_run_in_slices_gives_the_loop_back_between_steps() -> None:
    state = ContactsState()
    for i in range(40):
        state.add(Contact(f"c{i:02d}", f"person {i:02d}", notes="x" if i == 39 else None))
    ticks = 0

    async def other_user() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_user())
    await asyncio.sleep(0)
    before = ticks
    page = await run_in_slices(search_steps(state, "notes:x"), budget=0.0)
    other.cancel()
    assert [c.id for c in page.items] == ["c39"]
    assert ticks - before >= 20  # 20 blocks of 2 contacts were built and searched


@settings(max_examples=200, deadline=None)
@given(FIELDS)
def test_folding_the_joined_text_equals_joining_the_folded_values(
    fields: dict[str, object]
) -> None:
    """``field_text`` folds each field's values in one call; the search before the index
    folded value by value (NUL between values and fields composes and folds with nothing)."""
    contact = Contact("c", **fields)  # type: ignore[arg-type]
    by_value = []
    for name in search_index_module.TEXT_FIELDS:
        value = getattr(contact, name)
        values = value if isinstance(value, tuple) else ((value,) if value else ())
        by_value.append("\x00".join(search_index_module.fold(v) for v in values))
        assert search_index_module.field_text(contact, name) == by_value[-1]
    assert search_index_module.field_text(contact, search_index_module.ALL) == "\x00".join(
        by_value)
