"""The fence: a write of a user's actor lands only while its lease is still the one it holds.

A lease is ``(key, owner, epoch)``. The fence passes a key when its lease row still names
that owner at that epoch *and* the owner's registration is live by the database's clock,
and it takes a ``FOR SHARE`` lock on the lease row until the write commits:

* a takeover (which updates the row) waits until a write that passed has committed, and the
  new owner recovers only after its takeover committed, so it reads that write;
* a write that waited for a takeover's lock sees the row as the takeover left it
  (PostgreSQL re-checks a locked row's condition on its newest version) and is refused.

So a zombie, paused or cut off for longer than its lease, can never land a write after the
takeover: its statement is judged by the database when it executes, not when it was sent.

The fence is a CTE (:func:`fence_cte`) meant to sit in the write's *own* statement: the
group-commit writer joins the ``(persistence_id, owner, epoch)`` of every request in its
batch against the lease table and writes only the members that pass, so one stale member
is refused while the others commit. :func:`check_fence` is the same check for a write made
of several statements, inside its transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from psycopg import AsyncConnection, sql
from psycopg.pq import TransactionStatus

from persistence.errors import LeaseLost
from persistence.leases import Lease
from persistence.postgres.placement_tables import PlacementNames

FENCE_REQUESTS = sql.SQL(
    "SELECT * FROM ROWS FROM (jsonb_array_elements_text(%(fence_keys)s::jsonb), "
    "jsonb_array_elements_text(%(fence_owners)s::jsonb), "
    "jsonb_array_elements_text(%(fence_epochs)s::jsonb)) AS f(persistence_id, owner, epoch)"
)
"""The body of a ``requests`` CTE holding the leases in :func:`fence_params`, for
statements that have no request list of their own."""


def fence_cte(names: PlacementNames, requests: str = "req", name: str = "fenced") -> sql.Composed:
    """``<name> AS (...)``: the ``persistence_id`` of every row of the CTE ``requests``
    (columns ``persistence_id``, ``owner``, ``epoch``) whose lease is still held.

    Put it after ``requests`` in the write's ``WITH`` list and write only what joins it;
    a row whose ``owner`` is NULL (an unfenced write) never passes.
    """
    return sql.SQL(
        """{name} AS (
    SELECT l.key AS persistence_id
    FROM {requests} r
    JOIN {lease} l
      ON l.key = r.persistence_id AND l.owner = r.owner::text AND l.epoch = r.epoch::bigint
    JOIN {instance} i ON i.id = l.owner AND i.expires_at > now()
    FOR SHARE OF l
)"""
    ).format(
        name=sql.Identifier(name),
        requests=sql.Identifier(requests),
        lease=names.lease,
        instance=names.instance,
    )


def fence_params(leases: Sequence[Lease]) -> dict[str, str]:
    """The parameters of :data:`FENCE_REQUESTS` for ``leases``."""
    return {
        "fence_keys": json.dumps([lease.key for lease in leases]),
        "fence_owners": json.dumps([lease.owner for lease in leases]),
        "fence_epochs": json.dumps([lease.epoch for lease in leases]),
    }


def _passing_statement(names: PlacementNames) -> sql.Composed:
    return sql.SQL("WITH req AS ({requests}), {fenced} SELECT persistence_id FROM fenced").format(
        requests=FENCE_REQUESTS, fenced=fence_cte(names)
    )


async def stale_leases(
    conn: AsyncConnection[object], names: PlacementNames, leases: Sequence[Lease]
) -> list[Lease]:
    """The leases among ``leases`` that are no longer held; the others stay locked against a
    takeover until ``conn``'s transaction ends (run it inside the write's transaction)."""
    if not leases:
        return []
    cur = await conn.execute(_passing_statement(names), fence_params(leases))
    held = {str(row[0]) for row in await cur.fetchall()}  # type: ignore[index]
    return [lease for lease in leases if lease.key not in held]


async def check_fence(
    conn: AsyncConnection[object],
    names: PlacementNames,
    lease: Lease,
    *,
    hold_at_most: float = 2.0,
) -> None:
    """Raise :class:`LeaseLost` unless ``lease`` is still held; hold it until the commit.

    Only inside the write's own transaction (else the lock would end with this statement
    and the check prove nothing). A process paused inside that transaction would keep a
    takeover waiting, so the server ends the transaction after ``hold_at_most`` seconds idle
    (``idle_in_transaction_session_timeout``); a single-statement write with
    :func:`fence_cte` has no such window and is preferred.
    """
    if conn.info.transaction_status != TransactionStatus.INTRANS:
        raise ValueError("check_fence must run inside the write's transaction")
    await conn.execute(
        "SELECT set_config('idle_in_transaction_session_timeout', %s, true)",
        [f"{max(1, round(hold_at_most * 1000))}ms"],
    )
    if await stale_leases(conn, names, [lease]):
        raise LeaseLost(lease.key, lease.owner, lease.epoch)
