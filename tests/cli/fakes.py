"""A dict-backed ContactsBackend for the rendering and exit-code tests only.

It exercises how the CLI prints and maps errors without a database; everything that stores
contacts is tested against the real backends and a real PostgreSQL elsewhere.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from datetime import datetime
from typing import Any

from contacts_cli.backends.base import Conflict, DuplicatePolicy, Invalid, NotFound, Unavailable


class FakeBackend:
    def __init__(self, *, down: bool = False) -> None:
        self.contacts: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.down = down
        self.closed = False

    def _check(self) -> None:
        if self.down:
            raise Unavailable("cannot reach PostgreSQL at 127.0.0.1:1/x")

    async def create(self, user: str, data: Mapping[str, Any],
                     idempotency_key: str | None = None) -> dict[str, Any]:
        self._check()
        if not data.get("name"):
            raise Invalid([("name", "is required")])
        cid = f"c{len(self.contacts) + 1}"
        contact = {"id": cid, "name": data["name"], "emails": data.get("emails", []),
                   "phones": data.get("phones", []), "company": data.get("company"),
                   "labels": data.get("labels", []), "version": 1,
                   "created_at": "2026-11-23T10:00:00+00:00"}
        self.contacts[cid] = contact
        self.events[cid] = [{"at": "2026-11-23T10:00:00+00:00", "type": "ContactCreated",
                             "version": 1, "changes": dict(data)}]
        return contact

    async def get(self, user: str, contact_id: str) -> dict[str, Any]:
        self._check()
        if contact_id not in self.contacts:
            raise NotFound(f"contact {contact_id} not found")
        return self.contacts[contact_id]

    async def list(self, user: str, *, limit: int = 50, cursor: str | None = None,
                   q: str | None = None) -> dict[str, Any]:
        self._check()
        items = sorted(self.contacts.values(), key=lambda c: c["name"])
        if q:
            items = [c for c in items if q.lower() in c["name"].lower()]
        start = int(cursor or 0)
        page = items[start:start + limit]
        more = start + limit < len(items)
        return {"items": page, "next_cursor": str(start + limit) if more else None}

    async def update(self, user: str, contact_id: str, changes: Mapping[str, Any],
                     expected_version: int | None = None) -> dict[str, Any]:
        contact = await self.get(user, contact_id)
        if expected_version is not None and expected_version != contact["version"]:
            raise Conflict(f"contact {contact_id} is at version {contact['version']}")
        contact.update(changes)
        contact["version"] += 1
        self.events[contact_id].append({"at": "2026-11-23T11:00:00+00:00",
                                        "type": "ContactUpdated",
                                        "version": contact["version"], "changes": dict(changes)})
        return contact

    async def remove(self, user: str, contact_id: str,
                     expected_version: int | None = None) -> dict[str, Any]:
        contact = await self.get(user, contact_id)
        del self.contacts[contact_id]
        return contact

    async def history(self, user: str, contact_id: str) -> builtins.list[dict[str, Any]]:
        await self.get(user, contact_id)
        return self.events[contact_id]

    async def as_of(self, user: str, when: datetime) -> builtins.list[dict[str, Any]]:
        self._check()
        return list(self.contacts.values())

    async def import_rows(self, user: str, rows: AsyncIterable[dict[str, Any]], *,
                          policy: DuplicatePolicy = "skip", chunk_size: int = 1000,
                          dry_run: bool = False) -> AsyncIterator[dict[str, Any]]:
        n = 0
        async for row in rows:
            n += 1
            created = await self.create(user, row)
            yield {"row": n, "outcome": "created", "id": created["id"], "errors": []}

    async def stats(self) -> dict[str, Any]:
        self._check()
        return {"actors": {"live": 2}, "journal": {"events": 10, "snapshots": 1},
                "replay": {"count": 3, "p50_seconds": 0.0012}}

    async def close(self) -> None:
        self.closed = True
