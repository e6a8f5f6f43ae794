"""The persistent actor of one user: the wiring between the actor runtime and the service.

Everything it does is done elsewhere: :mod:`~contacts_cli.service.commands` decides and
replies, :mod:`~contacts_cli.service.envelope` is its journal codec,
:mod:`~contacts_cli.service.user_state` its state and
:mod:`~contacts_cli.service.snapshot_codec` its snapshots; *when* and *how* a snapshot is
taken is the runtime's snapshot path (:mod:`actors.snapshots`), configured here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from actors import Amortised, PersistentActor, PersistentContext
from actors.snapshots import BinarySnapshot
from contacts_cli.domain import Contact
from contacts_cli.service.commands import UserCommands
from contacts_cli.service.envelope import ContactsCodec, Journaled
from contacts_cli.service.ids import check_user_id, persistence_id
from contacts_cli.service.messages import Import
from contacts_cli.service.snapshot_codec import (
    SNAPSHOT_VERSION,
    decode_snapshot,
    encode_state_binary,
)
from contacts_cli.service.user_state import KeyEntry, UserState
from persistence.engine import Json

IMPORT_SNAPSHOT_DEFERRAL = 100_000
"""How far (in events) a streaming import may run past the last snapshot before one is taken
anyway, bounding what a crash in the middle of a large import replays."""

COMMAND_BATCH = 256
"""The most queued commands of one user decided together and written in one append."""

CrashPolicy = Callable[[object, BaseException, Any], Any]

SnapshotView = tuple[Sequence[Contact], Sequence[tuple[str, KeyEntry]]]
"""What a snapshot is encoded from: the contacts and the idempotency keys as of its
sequence number, as lists of immutable values, independent of the live state."""


def contact_count(state: UserState) -> int:
    """The size a user's snapshot interval grows with: its contacts."""
    return len(state.contacts)


class UserActor(PersistentActor[UserState]):
    """The persistent actor of one user, persistence id ``contacts-user/<user_id>``.

    Snapshots (the runtime's :class:`~actors.snapshot_strategies.Amortised` strategy): due
    once ``snapshot_every`` events were written since the last one, or twice as many events
    as the last snapshot held contacts if that is more. Encoding costs time in proportion to
    the user's contacts, so this interval keeps its cost amortised O(1) per event, while a
    crash replays at most two thirds of the journal. A snapshot is captured after the reply
    (``snapshot_in_background``), from a copy of the state's lists (the contacts are
    immutable, so the copy is cheap), and encoded a column at a time in a task the actor
    system owns, so neither this user nor the others wait for it. A graceful stop
    (passivation, shutdown) of an actor ``snapshot_every`` events or more behind snapshots
    once more (``snapshot_on_stop``), so a restart after a big import replays nothing.

    While an import streams (its chunks say ``more``), a snapshot falling due waits for the
    import's last chunk (``ctx.defer_snapshot``), unless the journal is
    :data:`IMPORT_SNAPSHOT_DEFERRAL` events or more past the last snapshot: a snapshot taken
    half-way through is outdated a moment later, and encoding and storing it competes with
    the import for the CPU. A crash during the import replays at most that many events more.

    Commands queued behind the one being handled are taken as one batch of up to
    :data:`COMMAND_BATCH` (the runtime's command batching, ``actors/batching.py``): each is
    decided against the state the ones before it left, all their events go to the journal in
    one append, and every reply waits for it. 5,000 creates in flight for one user cost a
    few dozen commits instead of 5,000; a single command is handled exactly as before.

    A write from outside this actor (a script, an old process, another replica without
    placement) makes its next persist meet a concurrency conflict: ``retry_on_conflict``
    recovers and decides the command again on the journal's state, so a command without an
    expected version succeeds and one with a stale expected version is refused (412).
    """

    snapshot_version = SNAPSHOT_VERSION
    snapshot_in_background = True
    retry_on_conflict = True
    max_batch = COMMAND_BATCH
    pipeline = True

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
        if snapshot_every is not None:
            self.snapshot_strategy = Amortised(snapshot_every, factor=2, measure=contact_count)
            self.snapshot_on_stop = True
        self.commands = UserCommands(user_id, region=region)
        self.policy = on_crash_policy

    def initial_state(self) -> UserState:
        return UserState()

    def on_event(self, state: UserState, event: Journaled) -> UserState:
        return state.apply(event)

    async def on_command(
        self, state: UserState, command: Any, ctx: PersistentContext[UserState]
    ) -> None:
        if isinstance(command, Import) and command.more:
            ctx.defer_snapshot(IMPORT_SNAPSHOT_DEFERRAL)

        async def persist(items: list[Journaled]) -> None:
            if items:
                await ctx.persist_all(items)

        ctx.reply(await self.commands.handle(state, command, persist, ctx.sequence_nr))

    def snapshot_view(self, state: UserState) -> SnapshotView:
        return list(state.contacts), list(state.keys.items())

    async def encode_snapshot(self, view: SnapshotView) -> BinarySnapshot:
        return await encode_state_binary(*view)

    def decode_snapshot(self, payload: Json, version: int) -> UserState:
        return decode_snapshot(payload, version, self.persistence_id)

    def on_crash(
        self, msg: object, error: BaseException, ctx: PersistentContext[UserState]
    ) -> Any:
        if self.policy is None:
            return None
        return self.policy(msg, error, ctx)
