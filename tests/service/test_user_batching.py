"""The user actor's command batching on PostgreSQL: creates in flight for one user share a
few appends, every reply names a contact that is durable, and a duplicate idempotency key
in the same batch is decided against the create before it."""

from __future__ import annotations

import asyncio
from typing import Any

from contacts_cli.backends.local import LocalBackend
from contacts_cli.service.actor import COMMAND_BATCH
from contacts_cli.service.envelope import decode_journaled
from contacts_cli.service.ids import persistence_id
from contacts_cli.service.settings import Settings
from tests.conftest import EngineFactory

CREATES = 600


async def test_creates_in_flight_share_appends_and_are_durable_when_answered(
    settings: Settings, engine_factory: EngineFactory
) -> None:
    engine = await engine_factory()
    appends = 0
    inner = engine.append

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal appends
        appends += 1
        return await inner(*args, **kwargs)

    engine.append = counted  # type: ignore[method-assign]
    backend = await LocalBackend.open(settings, engine=engine)
    try:
        await backend.user_count("batched")
        before = appends
        created = await asyncio.gather(*(
            backend.create("batched", {"name": f"P {i}"}) for i in range(CREATES)
        ))
        same_key = await asyncio.gather(
            backend.create("batched", {"name": "Once"}, idempotency_key="k"),
            backend.create("batched", {"name": "Once"}, idempotency_key="k"),
        )
        count = await backend.user_count("batched")
    finally:
        await backend.close()
    assert appends - before <= 2 * (CREATES // COMMAND_BATCH + 2)  # not one per create
    assert same_key[0] == same_key[1]  # the second is decided after the first: one contact
    assert count == CREATES + 1
    durable = [decode_journaled(e.type, e.version, e.payload).event.contact_id
               async for e in engine.replay(persistence_id("batched"))]
    assert sorted(durable) == sorted([c["id"] for c in created] + [same_key[0]["id"]])
