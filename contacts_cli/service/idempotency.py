"""Idempotency keys on the command side: what a key already did, answered again.

A create with ``Idempotency-Key: k`` is journaled under ``k`` with the fingerprint of its
body; an import under ``k`` journals each written row under ``k#<row number>``. The keys a
user's state still remembers (:class:`~contacts_cli.service.user_state.UserState`, for
:data:`~contacts_cli.service.user_state.IDEMPOTENCY_RETENTION`) decide a retry.

Invariants (tested in ``tests/service/test_local_backend.py``, ``test_http_api.py`` and
``test_mutants_idempotency.py``):

* A create retried with its key and the same body answers the contact it created (as it is
  now), and creates nothing; with another body it is refused (422); if that contact was
  removed since, 404, and nothing is created again.
* An import row re-sent with the same key and row number answers its first outcome, with
  :data:`REPLAYED_REASON`, and writes nothing; rows skipped or rejected the first time were
  not journaled under the key, so they are decided again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from contacts_cli.backends.errors import Invalid, NotFound
from contacts_cli.domain import ImportRow, contact_to_dict
from contacts_cli.service.user_state import KeyEntry, UserState

REPLAYED_REASON = "already imported with this Idempotency-Key"


def fingerprint(data: Mapping[str, Any]) -> str:
    """A digest of a request body, to refuse one idempotency key reused for another body.

    Journaled with the key, so its text must never change: the standard library's
    ``json.dumps`` with these options, byte for byte (other encoders format some floats and
    large integers differently)."""
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def replayed_create(state: UserState, key: str, digest: str) -> dict[str, Any] | None:
    """What a create under ``key`` with a body of fingerprint ``digest`` already produced
    (the contact as it is now), or ``None`` if ``key`` is not remembered: create it."""
    entry = state.keys.get(key)
    if entry is None:
        return None
    if entry.fingerprint is not None and entry.fingerprint != digest:
        raise Invalid([("Idempotency-Key", "was already used for a request with a different body")])
    contact = state.contacts.get(entry.contact_id)
    if contact is None:
        raise NotFound(
            f"contact {entry.contact_id!r}, created under this Idempotency-Key, "
            "has been removed since"
        )
    return contact_to_dict(contact)


def row_key(key: str | None, ref: int) -> str | None:
    """The key an import row is journaled under: ``<key>#<row number>``."""
    return f"{key}#{ref}" if key is not None else None


def replayed_json(ref: int, entry: KeyEntry) -> dict[str, Any]:
    """The outcome of a row already imported under the same idempotency key."""
    return {
        "row": ref,
        "outcome": entry.outcome,
        "id": entry.contact_id,
        "errors": [],
        "reason": REPLAYED_REASON,
    }


def split_replayed(
    state: UserState, key: str | None, rows: Iterable[ImportRow]
) -> tuple[dict[int, dict[str, Any]], list[ImportRow]]:
    """The outcomes of the rows already imported under ``key`` (by row number), and the
    rows still to decide, in order."""
    done: dict[int, dict[str, Any]] = {}
    fresh: list[ImportRow] = []
    for row in rows:
        name = row_key(key, row.ref)
        entry = state.keys.get(name) if name is not None else None
        if entry is None:
            fresh.append(row)
        else:
            done[row.ref] = replayed_json(row.ref, entry)
    return done, fresh
