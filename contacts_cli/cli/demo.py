"""``contacts demo``: a narrated walkthrough of actor persistence on real data.

It runs the real actor system on the configured PostgreSQL (the embedded one by default) in
its own schema, ``contacts_demo``, reset at the start so every run tells the same story.
Everything it prints is read back from the running system or the database: ids, journal
rows, supervision counters, replay timings, the snapshot, the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEMO_SCHEMA = os.environ.get("CONTACTS_DEMO_SCHEMA", "").strip() or "contacts_demo"
SNAPSHOT_EVERY = 10
ALICE, BOB = "alice", "bob"


class Poison:
    """A message no user actor understands: handling it raises, so the actor crashes."""

    def __repr__(self) -> str:
        return "Poison()"


@dataclass
class Narrator:
    """Prints the story: headings, prose, tables; pauses between steps with ``--step``."""

    step_mode: bool = False
    rich: bool = field(default_factory=lambda: sys.stdout.isatty())
    number: int = 0

    def __post_init__(self) -> None:
        from contacts_cli.cli.render import Output

        self.out = Output()

    def step(self, title: str) -> None:
        if self.number and self.step_mode:
            with contextlib.suppress(EOFError):
                input("\n[press Enter for the next step] ")
        self.number += 1
        heading = f"Step {self.number}: {title}"
        if self.out.rich:
            self.out.console().rule(f"[bold cyan]{heading}", align="left")
        else:
            self.out.line(f"\n== {heading} ==")

    def say(self, text: str) -> None:
        if self.out.rich:
            self.out.console().print(text, highlight=False, markup=False)
        else:
            self.out.line(text)

    def table(self, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
        self.out.records(rows, columns)

    def check(self, ok: bool, text: str) -> None:
        mark = "OK " if ok else "FAILED "
        self.say(f"  {mark}{text}")
        if not ok:
            raise SystemExit(f"demo check failed: {text}")


async def _timed(action: Awaitable[Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = await action
    return result, time.perf_counter() - started


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@dataclass
class Demo:
    database_url: str | None
    data_dir: Path
    say: Narrator
    url: str = ""
    embedded: Any = None
    backend: Any = None
    engine: Any = None
    ids: dict[str, str] = field(default_factory=dict)

    # -- plumbing --------------------------------------------------------------------------

    def settings(self) -> Any:
        from contacts_cli.service.settings import Settings

        return Settings.from_env(database_url=self.url, data_dir=self.data_dir,
                                 db_schema=DEMO_SCHEMA, snapshot_every=SNAPSHOT_EVERY)

    async def start_system(self) -> float:
        """A new engine (its own connections and writer id) and a new actor system."""
        from contacts_cli.backends.local import LocalBackend
        from persistence.postgres import PostgresEngine

        started = time.perf_counter()
        self.engine = PostgresEngine(self.url, schema=DEMO_SCHEMA)
        await self.engine.start()
        self.backend = await LocalBackend.open(self.settings(), engine=self.engine)
        return time.perf_counter() - started

    async def stop_system(self) -> float:
        started = time.perf_counter()
        if self.backend is not None:
            await self.backend.close()
        if self.engine is not None:
            await self.engine.close()
        self.backend = self.engine = None
        return time.perf_counter() - started

    def metrics(self) -> Any:
        return self.backend.system.metrics

    async def contacts(self, user: str) -> list[dict[str, Any]]:
        page = await self.backend.list(user, limit=1000)
        items: list[dict[str, Any]] = page["items"]
        return items

    async def journal_rows(self) -> list[dict[str, Any]]:
        import psycopg
        from psycopg import sql

        query = sql.SQL(
            "SELECT persistence_id, sequence_nr, type, created_at, payload::text "
            "FROM {}.journal ORDER BY ordering").format(sql.Identifier(DEMO_SCHEMA))
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            rows = await (await conn.execute(query)).fetchall()
        return [{"persistence_id": r[0], "sequence_nr": r[1], "type": r[2],
                 "committed_at": r[3].strftime("%H:%M:%S.%f")[:-3],
                 "payload": r[4] if len(r[4]) <= 70 else r[4][:67] + "..."} for r in rows]

    # -- the story -------------------------------------------------------------------------

    async def run(self) -> None:
        say = self.say
        say.step("start the actor system")
        if self.database_url:
            self.url = self.database_url
            say.say(f"Using PostgreSQL from DATABASE_URL ({_target(self.url)}).")
        else:
            from persistence.embedded import start_embedded_async

            self.embedded, seconds = await _timed(start_embedded_async(self.data_dir))
            self.url = self.embedded.url
            say.say(f"{self.embedded.message} ({_ms(seconds)})")
        await self._reset_schema()
        seconds = await self.start_system()
        say.say(f"An ActorSystem now runs on a PostgresEngine (schema {DEMO_SCHEMA!r}, writer "
                f"{self.engine.writer_id[:8]}), with a router actor that spawns one persistent "
                f"actor per user on demand. Started in {_ms(seconds)}.")

        say.step("spawn one persistent actor per user")
        for user in (ALICE, BOB):
            ref = await self.backend.activations.resolve(user)
            say.say(f"  {user:<6} -> actor {ref.path}  (persistence_id contacts-user/{user})")
        live = await self.backend.stats()
        say.say(f"Live users: {live['live_users']}; live actors in the system (router "
                f"included): {self.metrics().live_actors}. Each started by recovering its "
                "journal, which is empty so far.")

        say.step("add contacts: each change is persisted before the actor replies")
        people = [
            (ALICE, {"name": "Ada Lovelace", "emails": ["ada@example.org"],
                     "phones": ["+44 20 7946 0000"], "labels": ["math"]}),
            (ALICE, {"name": "Grace Hopper", "emails": ["grace@example.org"]}),
            (ALICE, {"name": "Zoë Åström", "company": "Ångström AB"}),
            (BOB, {"name": "Alan Turing", "emails": ["alan@example.org"]}),
            (BOB, {"name": "Katherine Johnson", "phones": ["+1 757 555 0100"]}),
        ]
        added = []
        for user, data in people:
            contact, seconds = await _timed(self.backend.create(user, data))
            self.ids[contact["name"]] = contact["id"]
            added.append({"user": user, "id": contact["id"], "name": contact["name"],
                          "version": contact["version"], "acknowledged_after": _ms(seconds)})
        say.table(added, ("user", "id", "name", "version", "acknowledged_after"))
        ada = self.ids["Ada Lovelace"]
        updated = await self.backend.update(ALICE, ada, {"company": "Analytical Engines"},
                                            expected_version=added[0]["version"])
        say.say(f"Then Ada's company was set to {updated['company']!r} with expected version "
                f"{added[0]['version']}; she is now at version {updated['version']}.")

        say.step("the rows in the PostgreSQL journal")
        say.say(f"SELECT persistence_id, sequence_nr, type, created_at, payload "
                f"FROM {DEMO_SCHEMA}.journal ORDER BY ordering;")
        say.table(await self.journal_rows(),
                  ("persistence_id", "sequence_nr", "type", "committed_at", "payload"))
        say.say("Ids are generated once, in the command handler, and stored in the event, so "
                "replaying the journal can never invent new ones.")

        say.step("crash an actor with a poison message; supervision resets it")
        before = await self.contacts(ALICE)
        await self._crash(ALICE)
        after = await self.contacts(ALICE)
        say.check([c["id"] for c in after] == [c["id"] for c in before],
                  f"after the reset alice still has the same {len(after)} contacts and ids")

        say.step("stop the whole system, start a new one, replay the journal")
        stopped = await self.stop_system()
        say.say(f"Stopped every actor and closed the engine ({_ms(stopped)}). Nothing of the "
                "contacts is left in memory.")
        started = await self.start_system()
        say.say(f"Started a new system with a new engine (writer {self.engine.writer_id[:8]}) "
                f"in {_ms(started)}.")
        for user in (ALICE, BOB):
            await self._recover(user, before if user == ALICE else None)

        say.step("take a snapshot and recover from it")
        rows = [{"name": f"Imported Person {i}", "emails": [f"person{i}@example.org"]}
                for i in range(1, 8)]
        say.say(f"A user's actor snapshots its state once {SNAPSHOT_EVERY} events were written "
                f"since its last snapshot. Alice imports {len(rows)} more contacts in one "
                "chunk:")

        async def items() -> Any:
            for number, row in enumerate(rows, 1):
                yield number, row

        outcomes = [o async for o in self.backend.import_numbered(ALICE, items())]
        say.say(f"  {sum(o['outcome'] == 'created' for o in outcomes)} created in one "
                "persist_all (one journal write).")
        waited = time.perf_counter()
        await self.backend.system.wait_for_snapshots()
        waited = time.perf_counter() - waited
        say.say("  The actor replied first and wrote the snapshot in the background, so it "
                f"never delays a command; it was durable {_ms(waited)} later.")
        snapshot = await self.engine.load_snapshot(f"contacts-user/{ALICE}")
        if snapshot is None:
            say.check(False, "a snapshot was saved")
            return
        highest = await self.engine.highest_sequence_nr(f"contacts-user/{ALICE}")
        size = len(json.dumps(snapshot.payload)) + len(snapshot.blob or b"")
        say.say(f"  snapshot of contacts-user/{ALICE} at sequence_nr {snapshot.sequence_nr} "
                f"({size} bytes, taken {snapshot.timestamp:%H:%M:%S}); journal highest "
                f"{highest}")
        await self.backend.update(ALICE, ada, {"title": "Countess of Lovelace"})
        say.say("  Then one more change after the snapshot: Ada's title.")
        expected = await self.contacts(ALICE)
        await self.stop_system()
        await self.start_system()
        say.say("Restarted the system again.")
        await self._recover(ALICE, expected)

        say.step("a contact's history, read from the journal")
        history = await self.backend.history(ALICE, ada)
        from contacts_cli.cli.render import history_rows

        say.table([{"version": v, "at": t, "event": e, "changes": d}
                   for v, t, e, d in history_rows(history)],
                  ("version", "at", "event", "changes"))
        shown = await self.backend.get(ALICE, ada)
        say.say(f"Now: {shown['name']}, {shown['company']}, {shown['title']} "
                f"(version {shown['version']}).")
        await self.stop_system()
        say.say(f"\nDone. The journal stays in schema {DEMO_SCHEMA!r}; look at it with\n"
                f"  CONTACTS_DB_SCHEMA={DEMO_SCHEMA} contacts db journal alice")

    async def _reset_schema(self) -> None:
        import psycopg
        from psycopg import sql

        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            await conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(DEMO_SCHEMA)))

    async def _crash(self, user: str) -> None:
        from actors import ActorCrashed, query

        say = self.say
        metrics = self.metrics()
        faults, replays, replayed = metrics.faults, metrics.replays, metrics.events_replayed
        ref = await self.backend.activations.resolve(user)
        say.say(f"Sending {Poison()!r} to {ref.path} ...")
        try:
            await query(ref, Poison(), 5.0)
        except ActorCrashed as crashed:
            say.say(f"  the actor crashed: {type(crashed.error).__name__}: {crashed.error}")
        else:
            say.check(False, "the poison message crashed the actor")
        await self.contacts(user)  # waits in the mailbox until the reset recovered
        say.say(f"  supervision decided to reset it: faults {faults} -> {metrics.faults}, "
                f"recoveries {replays} -> {metrics.replays}, events replayed "
                f"{metrics.events_replayed - replayed} "
                f"(the reset actor rebuilt its state from the journal)")

    async def _recover(self, user: str, expected: list[dict[str, Any]] | None) -> None:
        metrics = self.metrics()
        replays, replayed = metrics.replays, metrics.events_replayed
        total = metrics.replay_seconds.total
        contacts, seconds = await _timed(self.contacts(user))
        pid = f"contacts-user/{user}"
        snapshot = await self.engine.load_snapshot(pid)
        highest = await self.engine.highest_sequence_nr(pid)
        source = (f"snapshot at sequence_nr {snapshot.sequence_nr} + "
                  if snapshot is not None else "no snapshot, ")
        self.say.say(
            f"  {user}: recovered from {source}{metrics.events_replayed - replayed} events "
            f"replayed (journal highest {highest}) in "
            f"{_ms(metrics.replay_seconds.total - total)}; first answer after "
            f"{_ms(seconds)}; {metrics.replays - replays} recovery")
        if expected is not None:
            self.say.check(contacts == expected,
                           f"{user}: the same {len(contacts)} contacts, same ids, same versions")


def _target(url: str) -> str:
    from persistence.postgres.config import describe_target

    return str(describe_target(url))


def run_demo(database_url: str | None, data_dir: Path, step: bool) -> int:
    """Run the walkthrough; returns the exit code."""
    import logging

    # The crash in step 5 is narrated; the runtime's own error log would only repeat it.
    logging.getLogger("actors").setLevel(logging.CRITICAL)
    narrator = Narrator(step_mode=step)
    demo = Demo(database_url, data_dir, narrator)
    started = time.perf_counter()

    async def main() -> None:
        try:
            await demo.run()
        finally:
            await demo.stop_system()
            if demo.embedded is not None:
                await asyncio.to_thread(demo.embedded.stop)

    asyncio.run(main())
    narrator.say(f"(walkthrough took {time.perf_counter() - started:.1f} s)")
    return 0
