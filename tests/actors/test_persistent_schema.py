"""Schema evolution through a class-API actor: dataclass events, upcasters, snapshot codecs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any

from actors import (
    ActorSystem,
    DataclassEvents,
    Decision,
    PersistentActor,
    PersistentContext,
    query,
    spawn_actor,
)
from persistence import InMemoryEngine, NewEvent
from persistence.engine import Json
from persistence.errors import JournalIntegrityError

T = 5.0

events = DataclassEvents()


@events.register("ContactAdded", version=2)
@dataclass(frozen=True)
class ContactAdded:
    id: str
    first: str
    last: str


@events.register("ContactRemoved")
@dataclass(frozen=True)
class ContactRemoved:
    id: str


@events.upcaster("ContactAdded", from_version=1)
def _split_name(payload: Json) -> Json:
    first, _, last = payload["name"].partition(" ")
    return {"id": payload["id"], "first": first, "last": last}


@dataclass(frozen=True)
class Book:
    contacts: tuple[tuple[str, str], ...] = ()

    def names(self) -> list[str]:
        return [name for _, name in self.contacts]


class Contacts(PersistentActor[Book]):
    persistence_id = "contacts-alice"
    events = events
    snapshot_version = 2

    def __init__(self) -> None:
        self.crashes: list[BaseException] = []

    def initial_state(self) -> Book:
        return Book()

    def on_event(self, state: Book, event: Any) -> Book:
        match event:
            case ContactAdded(id=cid, first=first, last=last):
                return replace(state, contacts=(*state.contacts, (cid, f"{first} {last}")))
            case ContactRemoved(id=cid):
                return replace(state, contacts=tuple(c for c in state.contacts if c[0] != cid))
        raise TypeError(f"unexpected event {event!r}")

    async def on_command(self, state: Book, command: Any, ctx: PersistentContext[Book]) -> None:
        if command == "names":
            ctx.reply(state.names())
            return
        kind, *args = command
        if kind == "add":
            await ctx.persist(ContactAdded(*args))
        elif kind == "remove":
            await ctx.persist(ContactRemoved(*args))
        ctx.reply(ctx.state.names())

    def tags_for(self, event: Any) -> list[str]:
        return ["contact-added"] if isinstance(event, ContactAdded) else []

    def encode_snapshot(self, state: Book) -> Json:
        return {"contacts": [list(c) for c in state.contacts]}

    def decode_snapshot(self, payload: Json, version: int) -> Book:
        if version == 1:  # v1 stored {"names": {id: name}}
            return Book(tuple(payload["names"].items()))
        return Book(tuple((cid, name) for cid, name in payload["contacts"]))

    def on_crash(
        self, msg: object, error: BaseException, ctx: PersistentContext[Book]
    ) -> Decision | None:
        self.crashes.append(error)
        return None


async def test_old_and_new_event_versions_replay_to_the_current_shape() -> None:
    engine = InMemoryEngine()
    await engine.append(
        "contacts-alice",
        [
            NewEvent("ContactAdded", {"id": "c1", "name": "Ada Lovelace"}, version=1),
            NewEvent("ContactAdded", {"id": "c2", "first": "Grace", "last": "Hopper"}, version=2),
        ],
        0,
    )
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, Contacts(), "alice")
        assert await query(ref, "names", T) == ["Ada Lovelace", "Grace Hopper"]
        assert await query(ref, ("add", "c3", "Alan", "Turing"), T) == [
            "Ada Lovelace", "Grace Hopper", "Alan Turing"
        ]
        assert await query(ref, ("remove", "c1"), T) == ["Grace Hopper", "Alan Turing"]
    stored = [(e.type, e.version, e.payload) async for e in engine.replay("contacts-alice", 3)]
    assert stored == [
        ("ContactAdded", 2, {"id": "c3", "first": "Alan", "last": "Turing"}),
        ("ContactRemoved", 1, {"id": "c1"}),
    ]
    tagged = [e.payload["id"] async for e in engine.events_by_tag("contact-added")]
    assert tagged == ["c3"]  # the two seeded events were written without tags


async def test_snapshot_codec_versions_are_passed_to_the_decoder() -> None:
    engine = InMemoryEngine()
    await engine.append(
        "contacts-alice",
        [
            NewEvent("ContactAdded", {"id": "c1", "first": "Ada", "last": "L"}, version=2),
            NewEvent("ContactAdded", {"id": "c2", "first": "Bob", "last": "M"}, version=2),
        ],
        0,
    )
    await engine.save_snapshot(
        "contacts-alice", 1, {"snapshot_version": 1, "state": {"names": {"c1": "Ada L"}}}
    )
    async with ActorSystem("a", engine=engine) as system:
        ref = spawn_actor(system, Contacts(), "alice")
        assert await query(ref, "names", T) == ["Ada L", "Bob M"]


async def test_an_unknown_event_type_fails_recovery_loudly() -> None:
    engine = InMemoryEngine()
    await engine.append("contacts-alice", [NewEvent("ContactMerged", {"ids": ["a", "b"]})], 0)
    actor = Contacts()
    async with ActorSystem("a", engine=engine) as system:
        spawn_actor(system, actor, "alice")
        for _ in range(100):
            if actor.crashes:
                break
            await asyncio.sleep(0.01)
    [error] = actor.crashes
    assert isinstance(error, JournalIntegrityError)
    assert "event #1 of 'contacts-alice': unknown event type 'ContactMerged'" in str(error)
