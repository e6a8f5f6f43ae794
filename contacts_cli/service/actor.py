"""The persistent actor of one user: the wiring between the actor runtime and the service.

Everything it does is done elsewhere: :mod:`~contacts_cli.service.commands` decides and
replies, :mod:`~contacts_cli.service.envelope` is its journal codec,
:mod:`~contacts_cli.service.user_state` its state and
:mod:`~contacts_cli.service.snapshot_codec` its snapshots. What stays here is when a snapshot
is taken (see :class:`UserActor`); that policy moves into the actor runtime later, so it is
kept apart, in :class:`BackgroundSnapshots`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from actors import PersistentActor, PersistentContext
from contacts_cli.service.commands import UserCommands
from contacts_cli.service.envelope import ContactsCodec, Journaled
from contacts_cli.service.ids import check_user_id, persistence_id
from contacts_cli.service.messages import Import, SnapshotIfBehind
from contacts_cli.service.snapshot_codec import (
    SNAPSHOT_VERSION,
    decode_snapshot,
    encode_state,
    encode_state_text,
)
from contacts_cli.service.user_state import UserState
from persistence.engine import Engine, Json

IMPORT_SNAPSHOT_DEFERRAL = 100_000
"""How far (in events) a streaming import may run past the last snapshot before one is taken
anyway, bounding what a crash in the middle of a large import replays."""

CrashPolicy = Callable[[object, BaseException, Any], Any]

_SNAPSHOTS: set[asyncio.Task[None]] = set()
"""Snapshot tasks in flight (held here so they are not garbage-collected mid-way)."""


async def drain_snapshots(within: float = 30.0) -> None:
    """Wait (at most ``within`` seconds) for the snapshots being written in the background."""
    pending = [task for task in _SNAPSHOTS if not task.done()]
    if pending:
        await asyncio.wait(pending, timeout=within)


class BackgroundSnapshots:
    """When one user's snapshots are due, and writing them off the actor's command path.

    A snapshot is due once ``every`` events were written since the last one, or twice as many
    events as the last snapshot held contacts if that is more, and none is being written.
    Encoding a snapshot costs time in proportion to the user's contacts, so this interval
    keeps its cost amortised O(1) per event, while a crash replays at most two thirds of the
    journal. It is taken from a copy of the state as of its sequence number (the contacts are
    immutable, so the copy is one list) and encoded in the background a column at a time.
    """

    def __init__(self, persistence_id: str, every: int | None) -> None:
        self.persistence_id = persistence_id
        self.every = every
        self.last: int | None = None
        """The sequence number of the last snapshot; None until read after a recovery."""
        self._size = 0
        self._writing: asyncio.Task[None] | None = None

    def recovered(self, ctx: PersistentContext[UserState], state: UserState) -> None:
        """Learn the last snapshot from the recovery report (once, before the first command)."""
        report = ctx.last_recovery
        self.last = (report.snapshot_sequence_nr or 0) if report else 0
        self._size = len(state.contacts) if self.last else 0

    def behind(self, sequence_nr: int) -> int:
        """Events written since the last snapshot."""
        return sequence_nr - (self.last or 0)

    def due(self, sequence_nr: int) -> bool:
        """Whether enough events were written since the last snapshot (and none is running)."""
        if self.every is None or self.last is None:
            return False
        if self._writing is not None and not self._writing.done():
            return False
        return self.behind(sequence_nr) >= max(self.every, 2 * self._size)

    async def wait(self) -> None:
        """Until the snapshot being written (if any) is done."""
        task = self._writing
        if task is not None and not task.done():
            await asyncio.wait([task])

    def take(self, engine: Engine, sequence_nr: int, state: UserState,
             on_failure: Callable[[Exception, int], None]) -> None:
        """Snapshot ``state`` as of ``sequence_nr`` in the background."""
        previous, self.last = self.last, sequence_nr
        previous_size, self._size = self._size, len(state.contacts)
        contacts = list(state.contacts)
        keys = list(state.keys.items())
        pid = self.persistence_id

        async def snapshot() -> None:
            try:
                text = await encode_state_text(contacts, keys)
                await engine.save_snapshot(
                    pid, sequence_nr, {"snapshot_version": SNAPSHOT_VERSION, "state": text}
                )
            except Exception as exc:
                if self.last == sequence_nr:
                    self.last = previous  # try again after the next command
                    self._size = previous_size
                on_failure(exc, sequence_nr)

        task = asyncio.get_running_loop().create_task(snapshot(), name=f"snapshot {pid}")
        self._writing = task
        _SNAPSHOTS.add(task)
        task.add_done_callback(_SNAPSHOTS.discard)


class UserActor(PersistentActor[UserState]):
    """The persistent actor of one user, persistence id ``contacts-user/<user_id>``.

    A snapshot is taken after the reply, at most one per command (an import chunk's
    ``persist_all`` snapshots once, at its end), when :class:`BackgroundSnapshots` says it is
    due, so neither this user nor the others wait for it. Before a shutdown
    (:class:`~contacts_cli.service.messages.SnapshotIfBehind`, sent by
    ``LocalBackend.close``) an actor that is ``snapshot_every`` events or more behind
    snapshots once more, so a restart after a big import replays nothing.

    While an import streams (its chunks say ``more``), a snapshot falling due waits for the
    import's last chunk, unless the journal is :data:`IMPORT_SNAPSHOT_DEFERRAL` events or more
    past the last snapshot: a snapshot taken half-way through is outdated a moment later, and
    encoding and storing it competes with the import for the CPU. A crash during the import
    replays at most that many events more.
    """

    snapshot_version = SNAPSHOT_VERSION

    def __init__(
        self,
        user_id: str,
        *,
        region: str | None = None,
        snapshot_every: int | None = 500,
        on_crash_policy: CrashPolicy | None = None,
    ) -> None:
        self.user_id = check_user_id(user_id)
        self.persistence_id = persistence_id(user_id)
        self.events = ContactsCodec()
        self.snapshot_every = None  # the runtime takes none: self.snapshots does
        self.snapshots = BackgroundSnapshots(self.persistence_id, snapshot_every)
        self.commands = UserCommands(user_id, region=region)
        self.policy = on_crash_policy

    def initial_state(self) -> UserState:
        return UserState()

    def on_event(self, state: UserState, event: Journaled) -> UserState:
        return state.apply(event)

    async def on_command(
        self, state: UserState, command: Any, ctx: PersistentContext[UserState]
    ) -> None:
        snapshots = self.snapshots
        if snapshots.last is None:
            snapshots.recovered(ctx, state)
        if isinstance(command, SnapshotIfBehind):
            every = snapshots.every
            behind = every is not None and snapshots.behind(ctx.sequence_nr) >= every
            if behind:
                await snapshots.wait()
                self._snapshot(ctx, state)
            ctx.reply(behind)
            return

        async def persist(items: list[Journaled]) -> None:
            if items:
                await ctx.persist_all(items)

        ctx.reply(await self.commands.handle(state, command, persist))
        if snapshots.due(ctx.sequence_nr) and not (
            isinstance(command, Import) and command.more
            and snapshots.behind(ctx.sequence_nr) < IMPORT_SNAPSHOT_DEFERRAL
        ):
            self._snapshot(ctx, state)

    def on_recovery_complete(self, state: UserState) -> None:
        self.snapshots.last = None  # read from ctx.last_recovery at the next command

    def _snapshot(self, ctx: PersistentContext[UserState], state: UserState) -> None:
        engine = ctx.system.engine
        if engine is not None:  # a persistent actor runs only in a system with an engine
            self.snapshots.take(engine, ctx.sequence_nr, state, self.on_snapshot_failure)

    def encode_snapshot(self, state: UserState) -> Json:
        return encode_state(state)

    def decode_snapshot(self, payload: Json, version: int) -> UserState:
        return decode_snapshot(payload, version, self.persistence_id)

    def on_crash(
        self, msg: object, error: BaseException, ctx: PersistentContext[UserState]
    ) -> Any:
        if self.policy is None:
            return None
        return self.policy(msg, error, ctx)
