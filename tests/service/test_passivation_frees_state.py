"""A passivated user's memory comes back (issue 10): once the user's actor stopped, neither
the service's cache of refs nor the stopped actor keeps its ref, its actor object or its
state reachable (50,000 contacts stayed in memory after their actor stopped).

One thing may outlive the stop by up to the system's ``snapshot_drain_timeout``: the stopped
cell's small shell (its ref, context and finished task, not its behaviour or state), held by
the cancelled timer of the bounded snapshot on stop, which asyncio keeps in its heap until
the timer's time or until cancelled timers are most of the heap. The test makes them so
before it checks the ref."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from actors import stop
from contacts_cli.backends.local import LocalBackend
from contacts_cli.service.settings import Settings
from contacts_cli.service.user_state import UserState
from tests.conftest import EngineFactory

USER = "passivated"


def _states_holding(contact_id: str) -> int:
    """How many user states in memory still hold the contact ``contact_id``."""
    gc.collect()
    return sum(1 for obj in gc.get_objects()
               if isinstance(obj, UserState) and contact_id in obj.contacts)


async def _drop_cancelled_timers() -> None:
    """Make asyncio drop the cancelled timers from its heap (it does once they are more than
    half of at least 100 scheduled ones), as it would at their time."""
    loop = asyncio.get_running_loop()
    for handle in [loop.call_later(3600, lambda: None) for _ in range(1000)]:
        handle.cancel()
    await asyncio.sleep(0)
    await asyncio.sleep(0)


@pytest.mark.parametrize("how", ["shutdown_after", "explicit stop"])
async def test_a_passivated_user_s_ref_actor_and_state_are_collectable(
    settings: Settings, engine_factory: EngineFactory, how: str
) -> None:
    passivate_after = 0.1 if how == "shutdown_after" else None
    # gc.get_objects() in a full test run blocks the loop a while: a long TTL keeps the
    # instance's registration from lapsing meanwhile.
    backend = await LocalBackend.open(
        settings.with_(shutdown_after=passivate_after, cluster_ttl=120.0),
        engine=await engine_factory())
    try:
        created = [await backend.create(USER, {"name": f"Kept Nowhere {i}"}) for i in range(50)]
        contact_id = created[0]["id"]
        assert _states_holding(contact_id) == 1
        ref = await backend.activations.resolve(USER)
        watched_ref = weakref.ref(ref)
        watched_actor = weakref.ref(ref._cell.behaviour.actor)  # type: ignore[attr-defined]
        if how == "explicit stop":
            await stop(ref)
        del ref
        for _ in range(200):
            if USER not in await backend.activations.live_users():
                break
            await asyncio.sleep(0.05)
        assert USER not in await backend.activations.live_users()
        gc.collect()
        assert watched_actor() is None, "a stopped user's actor object is still reachable"
        assert _states_holding(contact_id) == 0, "a stopped user's state is still reachable"
        await _drop_cancelled_timers()
        gc.collect()
        assert watched_ref() is None, "a stopped user's ref is still held"
        assert await backend.get(USER, contact_id) == created[0]  # and it comes back
    finally:
        await backend.close()
