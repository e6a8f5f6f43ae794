"""The state of one user actor: the contacts plus the idempotency keys it still remembers.

A journaled idempotency key is remembered for :data:`IDEMPOTENCY_RETENTION` after the event
it came with; older keys are forgotten as newer events are folded in, oldest first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec

from contacts_cli.domain import ContactCreated, ContactsState, evolve
from contacts_cli.service.envelope import Journaled

IDEMPOTENCY_RETENTION = timedelta(days=7)
"""How long a journaled idempotency key is remembered (keys older than this are forgotten)."""


class KeyEntry(msgspec.Struct, frozen=True):
    """What a journaled idempotency key produced: which contact, how, from which body
    (one per keyed event replayed: a frozen ``msgspec.Struct``, cheap to build)."""

    contact_id: str
    fingerprint: str | None
    at: datetime
    outcome: str = "created"


class UserState:
    """The user's contacts plus the idempotency keys seen within the retention window.

    Keys loaded from a snapshot are decoded on first use: most commands never look at them.
    """

    __slots__ = ("_keys", "_load_keys", "_swept_at", "contacts")

    def __init__(
        self,
        contacts: ContactsState | None = None,
        keys: dict[str, KeyEntry] | None = None,
        *,
        load_keys: Callable[[], dict[str, KeyEntry]] | None = None,
    ) -> None:
        self.contacts = ContactsState() if contacts is None else contacts
        self._keys = keys if keys is not None or load_keys is not None else {}
        self._load_keys = load_keys
        self._swept_at: datetime | None = None

    @property
    def keys(self) -> dict[str, KeyEntry]:
        if self._keys is None:
            assert self._load_keys is not None
            self._keys, self._load_keys = self._load_keys(), None
        return self._keys

    def __repr__(self) -> str:
        return f"UserState({self.contacts!r})"

    def apply(self, item: Journaled) -> UserState:
        """Fold one journaled event in (in place: the state is owned by one actor)."""
        evolve(self.contacts, item.event)
        if item.idempotency_key is not None:
            keys = self.keys
            at = item.event.at
            keys.pop(item.idempotency_key, None)
            outcome = "created" if isinstance(item.event, ContactCreated) else "updated"
            keys[item.idempotency_key] = KeyEntry(
                item.event.contact_id, item.fingerprint, at, outcome
            )
            if at != self._swept_at:  # an import chunk's events share one instant
                self._swept_at = at
                self._forget_before(at - IDEMPOTENCY_RETENTION)
        return self

    def _forget_before(self, cutoff: datetime) -> None:
        # Keys are kept in journal order, so the oldest ones come first.
        keys = self.keys
        while keys:
            oldest_key = next(iter(keys))
            if keys[oldest_key].at >= cutoff:
                return
            del keys[oldest_key]
