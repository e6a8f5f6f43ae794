"""Binary snapshots (:class:`actors.snapshots.BinarySnapshot`): an encoder's bytes go to the
engine's blob, the decoder gets them back, older JSON versions still restore, and a blob that
does not match its envelope fails recovery."""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

import pytest

from actors import (
    ActorSystem,
    Every,
    JournalIntegrityError,
    PersistentActor,
    PersistentContext,
    query,
    spawn_actor,
    spawn_persistent,
    stop,
)
from actors.snapshots import BinarySnapshot, unwrap_snapshot, wrap_snapshot
from persistence import InMemoryEngine, NewEvent
from persistence.engine import Json

T = 5.0
GET = "get"


def pack(numbers: list[int]) -> bytes:
    return struct.pack(f"<{len(numbers)}q", *numbers)


def unpack(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 8}q", data))


class Numbers(PersistentActor[list[int]]):
    """Appends each command's number; snapshot version 1 was a JSON list, version 2 packs
    the numbers as bytes (sync or async encoder, inline or in the background)."""

    snapshot_version = 2

    def __init__(self, *, asynchronous: bool = False, background: bool = False) -> None:
        self.persistence_id = "numbers"
        self.snapshot_strategy = Every(3)
        self.snapshot_in_background = background
        self.asynchronous = asynchronous
        self.decoded: list[tuple[int, str]] = []
        self.crashes: list[BaseException] = []

    def initial_state(self) -> list[int]:
        return []

    def on_event(self, state: list[int], event: Any) -> list[int]:
        state.append(event["n"])
        return state

    async def on_command(
        self, state: list[int], command: Any, ctx: PersistentContext[list[int]]
    ) -> None:
        if command == GET:
            ctx.reply((list(state), self.decoded))
            return
        await ctx.persist({"n": command})
        ctx.reply(None)

    def snapshot_view(self, state: list[int]) -> list[int]:
        return list(state)

    def encode_snapshot(self, view: list[int]) -> Any:
        snapshot = BinarySnapshot(pack(view), {"count": len(view)})
        if not self.asynchronous:
            return snapshot

        async def later() -> BinarySnapshot:
            return snapshot

        return later()

    def decode_snapshot(self, payload: Json, version: int) -> list[int]:
        if version == 1:
            self.decoded.append((1, type(payload).__name__))
            return list(payload)
        assert isinstance(payload, BinarySnapshot)
        self.decoded.append((2, type(payload).__name__))
        numbers = unpack(payload.data)
        assert payload.state == {"count": len(numbers)}
        return numbers

    def on_crash(self, msg: object, error: BaseException, ctx: Any) -> None:
        self.crashes.append(error)


async def run(engine: InMemoryEngine, commands: list[Any], **options: bool) -> Any:
    async with ActorSystem("numbers", engine=engine) as system:
        ref = spawn_actor(system, Numbers(**options), "numbers")
        for command in commands:
            await query(ref, command, T)
        await system.wait_for_snapshots()
        answer = await query(ref, GET, T)
        await stop(ref)
    return answer


@pytest.mark.parametrize(
    ("asynchronous", "background"), [(False, False), (True, False), (True, True)]
)
async def test_a_binary_snapshot_is_saved_as_a_blob_and_restored_from_it(
    asynchronous: bool, background: bool
) -> None:
    engine = InMemoryEngine()
    numbers = [5, -7, 2**40, 0, 3]
    await run(engine, numbers, asynchronous=asynchronous, background=background)
    saved = await engine.load_snapshot("numbers")
    assert saved is not None and saved.sequence_nr == 3
    assert saved.payload == {"snapshot_version": 2, "state": {"count": 3}, "blob_bytes": 24}
    assert saved.blob == pack(numbers[:3])
    state, decoded = await run(engine, [])
    assert state == numbers
    assert decoded == [(2, "BinarySnapshot")]


async def test_an_older_json_version_still_restores_and_the_next_snapshot_is_binary() -> None:
    engine = InMemoryEngine()
    await engine.append("numbers", [NewEvent("n", {"n": n}) for n in (1, 2, 3, 4)], 0)
    await engine.save_snapshot("numbers", 3, {"snapshot_version": 1, "state": [1, 2, 3]})
    state, decoded = await run(engine, [5, 6])
    assert state == [1, 2, 3, 4, 5, 6]
    assert decoded == [(1, "list")]
    latest = await engine.load_snapshot("numbers")
    assert latest is not None and latest.sequence_nr == 6 and latest.blob == pack(state)


@pytest.mark.parametrize(
    ("payload", "blob", "complaint"),
    [
        ({"snapshot_version": 2, "state": None, "blob_bytes": 8}, None, "engine returned none"),
        ({"snapshot_version": 2, "state": None, "blob_bytes": 8}, b"1234", "returned 4 bytes"),
        ({"snapshot_version": 1, "state": [1]}, b"12345678", "does not declare"),
    ],
    ids=["missing", "truncated", "undeclared"],
)
async def test_a_blob_that_does_not_match_its_envelope_fails_recovery(
    payload: Json, blob: bytes | None, complaint: str
) -> None:
    with pytest.raises(JournalIntegrityError, match=complaint):
        unwrap_snapshot(payload, "snapshot of 'numbers'", blob)
    engine = InMemoryEngine()
    await engine.append("numbers", [NewEvent("n", {"n": 1})], 0)
    await engine.save_snapshot("numbers", 1, payload, blob)
    actor = Numbers()
    async with ActorSystem("numbers", engine=engine) as system:
        spawn_actor(system, actor, "numbers")
        for _ in range(100):  # bounded: recovery runs as soon as the actor starts
            if actor.crashes:
                break
            await asyncio.sleep(0.01)
    [error] = actor.crashes
    assert isinstance(error, JournalIntegrityError)
    assert "snapshot of 'numbers' at sequence_nr 1 could not be decoded" in str(error)
    assert complaint in str(error)
    assert actor.decoded == []


def test_wrap_keeps_the_bytes_and_freezes_the_json_part() -> None:
    state = {"count": [1]}
    envelope, blob = wrap_snapshot(BinarySnapshot(b"\x00\xff", state), 4, "snapshot of 'x'")
    state["count"].append(2)
    assert envelope == {"snapshot_version": 4, "state": {"count": [1]}, "blob_bytes": 2}
    assert blob == b"\x00\xff"
    assert wrap_snapshot("text", 1, "x") == ({"snapshot_version": 1, "state": "text"}, None)
    with pytest.raises(TypeError, match="must be bytes"):
        wrap_snapshot(BinarySnapshot(bytearray(b"x")), 1, "x")  # type: ignore[arg-type]
    assert json.loads(json.dumps(envelope)) == envelope


async def test_the_functional_api_stores_and_restores_a_binary_snapshot() -> None:
    engine = InMemoryEngine()

    async def handler(state: list[int], msg: Any, ctx: Any) -> list[int]:
        if msg == GET:
            ctx.reply(list(state))
            return state
        if not ctx.recovering:
            await ctx.persist(msg)
            ctx.reply(None)
        return [*state, msg]

    options: dict[str, Any] = {
        "snapshot_every": 2,
        "encode_snapshot": lambda state: BinarySnapshot(pack(state)),
        "decode_snapshot": lambda snapshot: unpack(snapshot.data),
    }
    for commands, expected in (([1, 2, 3], [1, 2, 3]), ([4], [1, 2, 3, 4])):
        async with ActorSystem("f", engine=engine) as system:
            ref = spawn_persistent(system, handler, "f", initial_state=[], **options)
            for command in commands:
                await query(ref, command, T)
            assert await query(ref, GET, T) == expected
    saved = await engine.load_snapshot("f")
    assert saved is not None and saved.sequence_nr == 4 and saved.blob == pack([1, 2, 3, 4])
