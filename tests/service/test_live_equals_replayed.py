"""The user actor folds the events it wrote as it made them (``ContactsCodec.folds_as_written``)
instead of decoding the journal's copies back; the state it then holds must be exactly the
state a replay of the journal rebuilds, for every field kind and every event type."""

from __future__ import annotations

from typing import Any

from actors import ActorSystem, query, spawn_actor
from contacts_cli.domain import ImportRow, RemoveContact, UpdateContact
from contacts_cli.service.actor import UserActor
from contacts_cli.service.messages import Create, Failed, Import
from contacts_cli.service.user_state import UserState
from tests.conftest import EngineFactory


class Watched(UserActor):
    """A user actor that keeps a reference to its (live, folded in place) state."""

    state: UserState | None = None

    async def on_command(self, state: UserState, command: Any, ctx: Any) -> None:
        self.state = state
        await super().on_command(state, command, ctx)


ROWS: list[dict[str, Any]] = [
    {"name": "  Zoë Ødegård ", "emails": ["ZOE@Example.ORG", "zoe@example.org", "z@b.io"],
     "phones": ["+1 415 555 0100", "+44 20 7946 0958 ext. 7"], "company": "Åström AB",
     "title": "Dr", "address": "1 Main St\r\nSpringfield", "birthday": "18151210",
     "notes": "multi\nline\tnotes", "labels": ["friends", "Friends", "ø"]},
    {"name": "Zoe\u0308 decomposed", "birthday": "--02-29", "labels": ["work"]},
    {"name": "Plain", "emails": ["plain@example.org"]},
    {"name": "Duplicate merges", "emails": ["plain@example.org"], "phones": ["415 555 0199"],
     "company": "Merged Co"},
    {"name": "", "emails": ["bad"]},
    {"name": "名前", "notes": "x" * 10_000},
]


async def test_live_state_after_an_import_equals_the_replayed_state(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory()
    live = Watched("live-vs-replay", snapshot_every=None)
    async with ActorSystem("live", engine=engine) as system:
        ref = spawn_actor(system, live)
        rows = [ImportRow(n, row) for n, row in enumerate(ROWS, 1)]
        report = await query(ref, Import(rows, "update", idempotency_key="import-k"), 30)
        assert [r["outcome"] for r in report] == [
            "created", "created", "created", "updated", "rejected", "created"]
        created = await query(ref, Create({"name": "Http"}, "http-1"), 30)
        assert not isinstance(created, Failed)
        patch = {"title": "T", "emails": ["h@e.org"], "notes": None}
        changed = await query(ref, UpdateContact(created["id"], patch), 30)
        assert not isinstance(changed, Failed)
        assert not isinstance(await query(ref, RemoveContact(report[1]["id"]), 30), Failed)
    assert live.state is not None

    replayed = Watched("live-vs-replay", snapshot_every=None)
    async with ActorSystem("replayed", engine=engine) as system:
        ref = spawn_actor(system, replayed)
        await query(ref, Import([], "skip"), 30)
        report = (await query(ref, Import(rows, "update", idempotency_key="import-k"), 30))
        assert {r.get("reason") for r in report if r["outcome"] != "rejected"} == {
            "already imported with this Idempotency-Key"}
    assert replayed.state is not None
    assert list(replayed.state.contacts) == list(live.state.contacts)
    assert replayed.state.keys == live.state.keys
    for mine, theirs in zip(live.state.contacts, replayed.state.contacts, strict=True):
        assert mine.created_at.tzinfo is theirs.created_at.tzinfo
        assert mine.updated_at.isoformat() == theirs.updated_at.isoformat()
