"""Global ``ordering`` of events, and why by-tag readers never skip a late commit.

An event's ordering is ``xid * 2**24 + position``: ``xid`` is the 64-bit id of the
transaction that wrote it (``pg_current_xact_id()``), ``position`` its place (1, 2, ...) in
that transaction's batch. Orderings are therefore unique, increase within an append and
with every later append of the same persistence id (a later append's transaction starts
after the earlier one committed, so it gets a larger transaction id).

Transaction ids are handed out in start order, not commit order, so a smaller ordering can
still become visible after a larger one. By-tag readers therefore return only events of
transactions below the visibility horizon of their statement's snapshot,
``pg_snapshot_xmin(pg_current_snapshot())``: every transaction below it has finished, so
nothing below it can appear later, and everything that appears later has a transaction id
at or above it, hence an ordering above every ordering already returned. The last ordering
a reader saw is thus a safe resume position (``after_ordering``): no gap detection, no
waiting, and writers never wait for each other (they used to serialise on a counter row
until COMMIT, so concurrent batches could not share a WAL flush).

The price: while any transaction of the cluster that has written something stays open,
by-tag readers see nothing newer than its start (later events are delayed, never lost).
So that a by-tag read still returns every event committed before it started, it first waits
until the transactions running at its start have finished: appends are single statements,
so that is usually no wait or a commit's time; a session left idle in a writing
transaction makes each by-tag read wait :data:`HORIZON_WAIT` seconds, then return what is
safe (the rest comes to a later read).

The factor leaves 24 bits for positions, so one transaction holds at most
:data:`MAX_EVENTS_PER_TRANSACTION` events, and transaction ids up to 2**39 (about 5.5e11
transactions) fit in a bigint; beyond that the server refuses the append ("bigint out of
range") rather than reuse an ordering.
"""

from __future__ import annotations

POSITION_BITS = 24
MAX_EVENTS_PER_TRANSACTION = 2**POSITION_BITS - 1

BASE_SQL = f"pg_current_xact_id()::text::bigint * {2**POSITION_BITS}"
"""The ordering base of the current transaction (assigns it a transaction id)."""

HORIZON_SQL = f"pg_snapshot_xmin(pg_current_snapshot())::text::bigint * {2**POSITION_BITS}"
"""Orderings below this belong to finished transactions only: safe to return."""

HORIZON_WAIT = 1.0
"""Seconds a by-tag read waits for the transactions running at its start to finish."""
