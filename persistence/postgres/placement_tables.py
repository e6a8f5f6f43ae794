"""The cluster placement tables, next to the journal in the engine's schema: migration 2.

The store that uses them is :mod:`persistence.placement`; the fence that joins them into the
journal's own write statement is :mod:`persistence.postgres.fence`.

* ``cluster_instance``: one row per running instance (process): ``id``, the ``address``
  others forward requests to (``NULL``: it takes no forwarded request, e.g. ``contacts
  --local``), ``started_at``, ``heartbeat_at``, ``expires_at`` (``heartbeat_at + ttl``, both
  from the database's clock), ``ttl_seconds``, ``draining``. Live means ``expires_at > now()``.
* ``cluster_lease``: one row per user ever activated: ``key`` (the actor's persistence id),
  ``owner`` (an instance id; ``NULL`` once released), ``epoch`` (the fencing token: grows by
  one with every acquisition, except the current owner's re-acquire; never reset), ``acquired_at``,
  ``previous_owner`` (the owner it was taken from, for forensics). Rows are never deleted: a
  deleted row would restart the epoch at 1, and a zombie's old token could match it again.
* ``cluster_takeover``: one row per takeover from an owner that had not released, for
  ``contacts cluster status`` ("takeovers in the last hour") and post-mortems.

A lease has no expiry of its own: it is valid while its owner's registration is live, so a
renewal is one row per instance, not one per user. Identifiers use the ``"C"`` collation,
as the journal's do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg import sql

if TYPE_CHECKING:  # schema.py imports this module for its migration list
    from persistence.postgres.schema import Names


@dataclass(frozen=True, slots=True)
class PlacementNames:
    """Composable identifiers of the placement tables of one schema + prefix."""

    schema: str
    prefix: str

    @classmethod
    def of(cls, names: Names) -> PlacementNames:
        return cls(names.schema, names.prefix)

    def _table(self, name: str) -> sql.Composed:
        return sql.SQL(".").join([sql.Identifier(self.schema), sql.Identifier(self.prefix + name)])

    @property
    def instance(self) -> sql.Composed:
        return self._table("cluster_instance")

    @property
    def lease(self) -> sql.Composed:
        return self._table("cluster_lease")

    @property
    def takeover(self) -> sql.Composed:
        return self._table("cluster_takeover")

    def index(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.prefix + name)


def placement_tables(names: Names) -> list[sql.Composed]:
    """Migration 2 of :mod:`persistence.postgres.schema`: the placement tables."""
    n = PlacementNames.of(names)
    return [
        sql.SQL(
            """CREATE TABLE {instance} (
                id text COLLATE "C" PRIMARY KEY,
                address text,
                started_at timestamptz NOT NULL,
                heartbeat_at timestamptz NOT NULL,
                expires_at timestamptz NOT NULL,
                ttl_seconds double precision NOT NULL CHECK (ttl_seconds > 0),
                draining boolean NOT NULL DEFAULT false
            )"""
        ).format(instance=n.instance),
        sql.SQL(
            """CREATE TABLE {lease} (
                key text COLLATE "C" PRIMARY KEY,
                owner text COLLATE "C",
                epoch bigint NOT NULL CHECK (epoch > 0),
                acquired_at timestamptz NOT NULL,
                previous_owner text COLLATE "C"
            )"""
        ).format(lease=n.lease),
        sql.SQL("CREATE INDEX {idx} ON {lease} (owner) WHERE owner IS NOT NULL").format(
            idx=n.index("cluster_lease_owner_idx"), lease=n.lease
        ),
        sql.SQL(
            """CREATE TABLE {takeover} (
                key text COLLATE "C" NOT NULL,
                epoch bigint NOT NULL,
                from_owner text COLLATE "C" NOT NULL,
                to_owner text COLLATE "C" NOT NULL,
                at timestamptz NOT NULL,
                PRIMARY KEY (key, epoch)
            )"""
        ).format(takeover=n.takeover),
        sql.SQL("CREATE INDEX {idx} ON {takeover} (at)").format(
            idx=n.index("cluster_takeover_at_idx"), takeover=n.takeover
        ),
    ]
