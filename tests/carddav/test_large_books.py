"""A large address book never holds the event loop in one piece: every multistatus loop
(PROPFIND depth 1, multiget, addressbook-query, sync-collection) hands the loop back at
least every ``SLICE`` responses, counted by a task that ticks whenever it gets to run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from contacts_cli.backends.local import LocalBackend
from contacts_cli.carddav import davxml
from tests.carddav.dav import BOOK, multiget, propfind, responses, sync

CARDS = 3 * davxml.SLICE + 17
QUERY = ('<C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">'
         "<D:prop><D:getetag/><C:address-data/></D:prop>"
         '<C:filter><C:prop-filter name="FN"><C:text-match>Person</C:text-match>'
         "</C:prop-filter></C:filter></C:addressbook-query>")


async def _rows() -> AsyncIterator[dict[str, Any]]:
    for n in range(CARDS):
        yield {"name": f"Person {n}", "emails": [f"p{n}@example.org"]}


@pytest.fixture
async def big_book(backend: LocalBackend) -> LocalBackend:
    async for _ in backend.import_rows("alice", _rows()):
        pass
    return backend


async def _longest_run_without_the_loop(monkeypatch: pytest.MonkeyPatch,
                                        request: Callable[[], Awaitable[Any]]) -> tuple[int, int]:
    """(responses written, the most written with no other task running in between)."""
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    seen: list[int] = []
    real_add = davxml.Multistatus._add

    def add(self: davxml.Multistatus, node: Any) -> None:
        seen.append(ticks)
        real_add(self, node)

    monkeypatch.setattr(davxml.Multistatus, "_add", add)
    task = asyncio.create_task(ticker())
    try:
        await request()
    finally:
        stop.set()
        await task
    longest = run = 0
    for before, now in zip([None, *seen], seen, strict=False):
        run = run + 1 if before == now else 1
        longest = max(longest, run)
    return len(seen), longest


async def test_every_multistatus_loop_yields_within_a_slice(
    big_book: LocalBackend, dav: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    listing = await propfind(dav, BOOK, ["{DAV:}getetag"], depth="1")
    hrefs = [r.findtext("{DAV:}href") or "" for r in responses(listing)][1:]
    assert len(hrefs) == CARDS

    async def query() -> None:
        answer = await dav.request("REPORT", BOOK, content=QUERY, headers={"Depth": "1"})
        assert answer.status_code == 207, answer.text
        assert len(responses(davxml.ET.fromstring(answer.content))) == CARDS

    requests: dict[str, Callable[[], Awaitable[Any]]] = {
        "propfind": lambda: propfind(dav, BOOK, ["{DAV:}getetag"], depth="1"),
        "multiget": lambda: multiget(dav, hrefs),
        "query": query,
        "sync": lambda: sync(dav, ""),
    }
    for name, request in requests.items():
        written, longest = await _longest_run_without_the_loop(monkeypatch, request)
        assert written >= CARDS, name
        assert longest <= davxml.SLICE + 1, (name, longest)
