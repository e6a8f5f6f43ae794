"""Reads of the past (issue 10): ``as_of`` from the latest snapshot equals ``as_of`` from the
start of the journal, ``history`` reads the journal in pages, and ``GET ?as_of=`` streams its
answer a page at a time with the bytes the whole body had."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from actors.snapshots import wrap_snapshot
from contacts_cli.backends import past
from contacts_cli.backends.local import LocalBackend
from contacts_cli.domain import (
    ContactsState,
    CreateContact,
    DomainError,
    Event,
    RemoveContact,
    UpdateContact,
    contact_to_dict,
    decide,
    evolve,
    state_as_of,
)
from contacts_cli.domain.decide import Command
from contacts_cli.domain.state import sort_key
from contacts_cli.http.app import create_app
from contacts_cli.service.envelope import Journaled, encode_journaled
from contacts_cli.service.ids import persistence_id
from contacts_cli.service.settings import Settings
from contacts_cli.service.snapshot_codec import SNAPSHOT_VERSION, encode_state
from contacts_cli.service.user_state import UserState
from persistence.engine import NewEvent
from persistence.postgres import PostgresEngine
from tests.domain.conftest import T0

USER = "past"
NAMES = ["Ada", "bob", "Émile", "zoë", "Grace"]


def at(step: int) -> datetime:
    return T0 + timedelta(seconds=10 * step)


def command(rng: random.Random, state: ContactsState) -> Command:
    ids = [c.id for c in state]
    kind = rng.choice(["create", "create", "update", "remove"] if ids else ["create"])
    if kind == "create":
        return CreateContact({"name": rng.choice(NAMES), "notes": f"n{rng.randrange(99)}"})
    if kind == "update":
        return UpdateContact(rng.choice(ids), {"name": rng.choice(NAMES)})
    return RemoveContact(rng.choice(ids))


async def write_journal(
    engine: PostgresEngine, seed: int, steps: int, snapshot_at: set[int]
) -> list[tuple[datetime, Event]]:
    """``steps`` random commands as the actor would journal them, a step's events at
    ``at(step)``; a snapshot after each command whose last sequence number is in
    ``snapshot_at``. Returns the events with their times (what ``as_of`` folds)."""
    rng = random.Random(seed)
    pid = persistence_id(USER)
    state = ContactsState()
    events: list[tuple[datetime, Event]] = []
    for step in range(steps):
        try:
            decided = decide(state, command(rng, state), at(step),
                             lambda: str(uuid.UUID(int=rng.getrandbits(128))))
        except DomainError:
            continue
        encoded = [encode_journaled(Journaled(event)) for event in decided]
        new = [NewEvent(type_name, payload, version) for type_name, version, payload in encoded]
        await engine.append(pid, new, len(events))
        for event in decided:
            evolve(state, event)
            events.append((event.at, event))
        if len(events) in snapshot_at:
            envelope = wrap_snapshot(encode_state(UserState(state.copy())), SNAPSHOT_VERSION,
                                     "test snapshot")
            await engine.save_snapshot(pid, len(events), envelope)
    return events


def expected(events: list[tuple[datetime, Event]], when: datetime) -> list[dict[str, Any]]:
    """``as_of`` from the start: every event up to ``when`` folded, in name order."""
    return [contact_to_dict(c) for c in sorted(state_as_of(events, when), key=sort_key)]


@pytest.mark.parametrize("seed", range(3))
async def test_as_of_from_a_snapshot_equals_as_of_from_the_start(
    pg_engine: PostgresEngine, seed: int
) -> None:
    events = await write_journal(pg_engine, seed, 60, {5, 20, 21, 40})
    last = events[-1][0]
    instants = [T0 - timedelta(seconds=1), *(at(s) + timedelta(seconds=d)
                for s in range(0, 62, 3) for d in (0, 5)), last + timedelta(days=1)]
    for when in instants:
        assert await past.as_of(pg_engine, USER, when) == expected(events, when), when


async def test_as_of_starts_from_the_snapshot_not_from_the_start(
    pg_engine: PostgresEngine,
) -> None:
    """The events a snapshot covers are deleted: only a read that starts from the snapshot
    still finds the contacts they created (one from the start would miss them). (A time
    before the first event left cannot be placed: the deleted events' times are gone.)"""
    events = await write_journal(pg_engine, 7, 40, {12})
    await pg_engine.delete_events_to(persistence_id(USER), 12)
    for when in (events[12][0], events[20][0], events[-1][0] + timedelta(hours=1)):
        found = await past.as_of(pg_engine, USER, when)
        assert found == expected(events, when) != []


async def test_the_end_of_the_past_is_found_by_bisection(pg_engine: PostgresEngine) -> None:
    events = await write_journal(pg_engine, 3, 30, set())
    pid = persistence_id(USER)
    assert await past.last_event_at_or_before(pg_engine, pid, T0 - timedelta(seconds=1)) == 0
    for number, (when, _) in enumerate(events, 1):
        last = max(n for n, (t, _) in enumerate(events, 1) if t <= when)
        assert await past.last_event_at_or_before(pg_engine, pid, when) == last >= number


async def test_history_reads_the_journal_in_pages(
    pg_engine: PostgresEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = await write_journal(pg_engine, 5, 40, set())
    contact_id = events[0][1].contact_id
    whole = await past.history(pg_engine, USER, contact_id)
    monkeypatch.setattr(past, "PAGE_SIZE", 3)
    assert await past.history(pg_engine, USER, contact_id) == whole
    assert [entry["sequence_nr"] for entry in whole] == [
        n for n, (_, e) in enumerate(events, 1) if e.contact_id == contact_id]


async def test_get_as_of_streams_its_answer_a_page_per_chunk(
    backend: LocalBackend, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ["Zed", "amy", "Bob", "carl", "Dora"]:
        await backend.create(USER, {"name": name})
    when = datetime.now(T0.tzinfo) + timedelta(seconds=1)
    monkeypatch.setattr(past, "CONTACTS_PER_PAGE", 2)
    app = create_app(settings, backend)
    chunks: list[bytes] = []
    status: list[int] = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": f"/api/{USER}/contacts", "raw_path": b"",
        "query_string": f"as_of={when.isoformat()}".replace("+", "%2B").encode(),
        "headers": [(b"host", b"test")], "client": ("127.0.0.1", 1), "server": ("test", 80),
        "root_path": "", "state": {},
    }

    requested = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if requested.is_set():  # the client stays connected until the response is done
            await asyncio.Event().wait()
        requested.set()
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body" and message.get("body"):
            chunks.append(message["body"])

    async with app.router.lifespan_context(app):
        await app(scope, receive, send)
    assert status == [200]
    assert len(chunks) >= 4  # the opening, three pages of at most two contacts, the closing
    whole = await past.as_of(backend.engine, USER, when)
    assert [c["name"] for c in whole] == ["amy", "Bob", "carl", "Dora", "Zed"]
    assert b"".join(chunks) == orjson.dumps(
        {"items": whole, "next_cursor": None, "as_of": when.isoformat()})
