"""A write from outside the service (another process on the same database, here a second
LocalBackend with its own engine that, like an old version of the service, takes no part in
the cluster's placement) never makes the next command fail with a 500: the user
actor recovers and decides again (``retry_on_conflict``), so a PATCH without If-Match
succeeds on top of the outside write and one with a stale If-Match is refused with 412."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from contacts_cli.backends.base import Conflict
from contacts_cli.backends.local import LocalBackend
from contacts_cli.service.settings import Settings
from tests.conftest import EngineFactory


@pytest.fixture
async def outsider(
    backend: LocalBackend, settings: Settings, engine_factory: EngineFactory
) -> AsyncIterator[LocalBackend]:
    schema = backend.engine.config.schema  # type: ignore[attr-defined]
    opened = LocalBackend(settings, await engine_factory(schema=schema), owns_engine=False)
    await opened.activations.start()  # no cluster: it writes without leases or fences
    yield opened
    await opened.close()


async def test_a_patch_after_an_outside_write_succeeds_and_a_stale_if_match_is_412(
    backend: LocalBackend, outsider: LocalBackend
) -> None:
    contact = await backend.create("alice", {"name": "A"})
    cid = contact["id"]
    assert (await outsider.update("alice", cid, {"notes": "outside"}))["version"] == 2

    patched = await backend.update("alice", cid, {"name": "B"})  # memory said version 1
    assert (patched["version"], patched["name"], patched["notes"]) == (3, "B", "outside")

    await outsider.update("alice", cid, {"notes": "again"})  # version 4
    with pytest.raises(Conflict) as refused:
        await backend.update("alice", cid, {"name": "C"}, expected_version=3)
    assert refused.value.http_status == 412 and refused.value.exit_code == 4

    current = await backend.get("alice", cid)
    assert (current["version"], current["name"], current["notes"]) == (4, "B", "again")
    assert backend.system.metrics.conflict_retries == 2
