"""The SQL of a group-commit batch: one statement writes every request of the batch.

One batch is one SQL statement on an autocommit connection, so one implicit transaction: the
statement returns only after COMMIT. It checks each request's expected sequence number
against the per-id ``highest`` row (``UPDATE ... WHERE highest = expected``, or an insert for a
new id) and inserts only the events of the requests that passed (``won``), so one actor's
conflict never fails another actor's events in the same batch. It returns the ordering base
and commit timestamp (``NULL`` when every request lost) and the ids that won.

Global ordering: an event's ordering is ``base`` (derived from the transaction's id, see
:mod:`persistence.postgres.ordering`) plus its position in the batch as sent, so writers
share no counter and no lock beyond their own ids' ``highest`` rows. The positions of a
losing request are skipped, so orderings are increasing but not contiguous.

The statements take their columns as JSON text (see :mod:`.parameters`) and split them
server-side with ``jsonb_array_elements``; the payloads with ``json_array_elements``, so
that they are stored as sent in the journal's ``json`` column.
"""

from __future__ import annotations

from psycopg import AsyncConnection, sql
from psycopg.rows import TupleRow

from persistence.errors import InvalidArgument
from persistence.postgres.fence import fence_cte
from persistence.postgres.ordering import BASE_SQL
from persistence.postgres.placement_tables import PlacementNames
from persistence.postgres.schema import Names

SINGLES, ONE_RUN, RUNS = "singles", "one run", "runs"
SHAPES = (SINGLES, ONE_RUN, RUNS)
"""The shapes of a batch, each with its own statement: every request one event (many actors
persisting one event each), one append of alike events (one actor persisting many), or
anything else."""


def batch_statement(
    names: Names, *, tagged: bool, shape: str, fenced: bool = False
) -> sql.Composed:
    """The whole batch as one statement; ``tagged`` adds the events' tags and the by-tag
    index rows (a batch without tags sends and splits no tag column).

    ``fenced`` (a batch holding at least one fenced request) adds each request's lease
    (``owner``, ``epoch``; NULL for an unfenced one) and the fence of
    :mod:`persistence.postgres.fence`: a fenced request wins only if its lease passes, and
    the statement also returns the fenced requests whose lease did not (refused, nothing
    written). An unfenced batch runs the statement without any of it.

    Per event, only the payload (and the tags) travel as a column of their own: splitting
    a JSON array costs the server about 0.3 ms per thousand elements, a third of the
    insert's own cost. The events' persistence id, sequence number, position, type and
    version come from the requests (:data:`SINGLES`: one event each, so every column is
    zipped with the requests') or from *runs*, consecutive events of one request with the
    same type and version, expanded server-side (:data:`RUNS`). :data:`ONE_RUN` pairs
    every payload with the batch's only run without the join on positions that
    :data:`RUNS` needs (about a sixth of the statement for a thousand events).
    """
    if shape not in SHAPES:
        raise InvalidArgument(f"unknown batch shape {shape!r}")
    tags_value = (
        """CASE WHEN jsonb_typeof({src}.tags) = 'array'
                THEN ARRAY(SELECT jsonb_array_elements_text({src}.tags))
                ELSE '{{}}'::text[] END"""
        if tagged
        else "'{{}}'::text[]"
    )
    tags_column = (
        """,
                    jsonb_array_elements(%(e_tags)s::jsonb))"""
        if tagged
        else ")"
    )
    tags_name = "tags, " if tagged else ""
    fence_columns = (
        """,
                    jsonb_array_elements_text(%(owners)s::jsonb),
                    jsonb_array_elements_text(%(epochs)s::jsonb)"""
        if fenced
        else ""
    )
    fence_names = "owner, epoch, " if fenced else ""
    fence_select = "r.owner, r.epoch, " if fenced else ""
    admitted = (
        """
      AND (r.owner IS NULL OR r.persistence_id IN (SELECT persistence_id FROM fenced))"""
        if fenced
        else ""
    )
    if shape == SINGLES:
        req = (
            """
    SELECT r.persistence_id, r.expected::bigint, 1::bigint AS n, r.type, r.version::int,
           r.payload, """
            + ("r.tags, " if tagged else "")
            + fence_select
            + """r.i
    FROM ROWS FROM (jsonb_array_elements_text(%(pids)s::jsonb),
                    jsonb_array_elements_text(%(expected)s::jsonb),
                    jsonb_array_elements_text(%(r_type)s::jsonb),
                    jsonb_array_elements_text(%(r_version)s::jsonb),
                    json_array_elements(%(e_payload)s::json)"""
            + tags_column[:-1]
            + fence_columns
            + """)
        WITH ORDINALITY AS r(persistence_id, expected, type, version, payload, """
            + tags_name
            + fence_names
            + "i)"
        )
        rows = (
            """
    SELECT r.persistence_id, r.expected + 1, (SELECT base FROM counter) + r.i,
           (SELECT ts FROM counter), r.type, r.version, r.payload,
           """
            + tags_value.replace("{src}", "r")
            + """, %(writer)s
    FROM req r
    WHERE r.persistence_id IN (SELECT persistence_id FROM won)"""
        )
        runs = ""
    else:
        req = (
            """
    SELECT r.persistence_id, r.expected::bigint, r.n::bigint, """
            + fence_select
            + """r.i
    FROM ROWS FROM (jsonb_array_elements_text(%(pids)s::jsonb),
                    jsonb_array_elements_text(%(expected)s::jsonb),
                    jsonb_array_elements_text(%(counts)s::jsonb)"""
            + fence_columns
            + """)
        WITH ORDINALITY AS r(persistence_id, expected, n, """
            + fence_names
            + "i)"
        )
        runs = """
run AS (
    SELECT r.persistence_id, r.expected + u.skip::bigint AS seq, u.start::bigint, u.n::bigint,
           u.type, u.version::int
    FROM ROWS FROM (jsonb_array_elements_text(%(r_req)s::jsonb),
                    jsonb_array_elements_text(%(r_skip)s::jsonb),
                    jsonb_array_elements_text(%(r_start)s::jsonb),
                    jsonb_array_elements_text(%(r_n)s::jsonb),
                    jsonb_array_elements_text(%(r_type)s::jsonb),
                    jsonb_array_elements_text(%(r_version)s::jsonb))
        AS u(req, skip, start, n, type, version)
    JOIN req r ON r.i = u.req::bigint
    WHERE r.persistence_id IN (SELECT persistence_id FROM won)
),"""
        k = "e.idx" if shape == ONE_RUN else "g.k"
        rows = (
            f"""
    SELECT u.persistence_id, u.seq + {k}, (SELECT base FROM counter) + u.start + {k},
           (SELECT ts FROM counter), u.type, u.version, e.payload,
           """
            + tags_value.replace("{src}", "e")
            + """, %(writer)s
    FROM run u"""
            + (
                """
    CROSS JOIN ROWS FROM (json_array_elements(%(e_payload)s::json)"""
                if shape == ONE_RUN
                else """
    CROSS JOIN LATERAL generate_series(1::bigint, u.n) AS g(k)
    JOIN ROWS FROM (json_array_elements(%(e_payload)s::json)"""
            )
            + tags_column
            + """
        WITH ORDINALITY AS e(payload, """
            + tags_name
            + "idx)"
            + ("" if shape == ONE_RUN else "\n        ON e.idx = u.start + g.k")
        )
    tag_cte = (
        """,
tagged AS (
    INSERT INTO {event_tag} (tag, ordering, persistence_id, sequence_nr)
    SELECT t.tag, (SELECT base FROM counter) + t.idx::bigint, t.persistence_id,
           t.sequence_nr::bigint
    FROM ROWS FROM (jsonb_array_elements_text(%(t_pid)s::jsonb),
                    jsonb_array_elements_text(%(t_seq)s::jsonb),
                    jsonb_array_elements_text(%(t_idx)s::jsonb),
                    jsonb_array_elements_text(%(t_tag)s::jsonb))
        AS t(persistence_id, sequence_nr, idx, tag)
    WHERE t.persistence_id IN (SELECT persistence_id FROM won)
)"""
        if tagged
        else ""
    )
    return sql.SQL(
        """
WITH req AS ("""
        + req
        + """
),"""
        + ("\n{fenced}," if fenced else "")
        + """
upd AS (
    UPDATE {highest} AS h SET highest = r.expected + r.n
    FROM req r
    WHERE r.expected > 0 AND h.persistence_id = r.persistence_id AND h.highest = r.expected"""
        + admitted
        + """
    RETURNING h.persistence_id
),
ins AS (
    INSERT INTO {highest} AS h (persistence_id, highest)
    SELECT r.persistence_id, r.n FROM req r WHERE r.expected = 0"""
        + admitted
        + """
    ON CONFLICT (persistence_id) DO UPDATE SET highest = excluded.highest WHERE h.highest = 0
    RETURNING h.persistence_id
),
won AS (SELECT persistence_id FROM upd UNION ALL SELECT persistence_id FROM ins),
counter AS (
    SELECT """
        + BASE_SQL
        + """ AS base, now() AS ts WHERE EXISTS (SELECT 1 FROM won)
),"""
        + runs
        + """
jrn AS (
    INSERT INTO {journal}
        (persistence_id, sequence_nr, ordering, created_at, type, version, payload, tags, writer)"""
        + rows
        + """
)"""
        + tag_cte
        + """
SELECT (SELECT base FROM counter), (SELECT ts FROM counter),
       ARRAY(SELECT persistence_id FROM won)"""
        + (
            """,
       ARRAY(SELECT persistence_id FROM req WHERE owner IS NOT NULL
             EXCEPT SELECT persistence_id FROM fenced)"""
            if fenced
            else ""
        )
        + "\n"
    ).format(
        highest=names.highest,
        journal=names.journal,
        event_tag=names.event_tag,
        fenced=fence_cte(PlacementNames.of(names)) if fenced else sql.SQL(""),
    )


StatementKey = tuple[bool, str, bool]
"""``(tagged, shape, fenced)``: which of the batch statements a batch needs."""


class BatchStatements:
    """The twelve batch statements of one schema (three shapes, with or without tags, fenced
    or not), each rendered to bytes with the first connection that runs it: psycopg
    renders a ``Composed`` query anew on every execute (tens of microseconds for these), but
    caches the conversion of a bytes query."""

    def __init__(self, names: Names) -> None:
        self._composed = {
            (tagged, shape, fenced): batch_statement(
                names, tagged=tagged, shape=shape, fenced=fenced
            )
            for tagged in (False, True)
            for shape in SHAPES
            for fenced in (False, True)
        }
        self._rendered: dict[StatementKey, bytes] = {}
        self.highest = sql.SQL(
            "SELECT persistence_id, highest FROM {} WHERE persistence_id = ANY(%s)"
        ).format(names.highest)
        """The highest sequence numbers of some ids: what the losers of a batch are told."""

    def query(self, kind: StatementKey, conn: AsyncConnection[TupleRow]) -> bytes:
        """The statement for a batch of this kind, as bytes."""
        query = self._rendered.get(kind)
        if query is None:
            query = self._rendered[kind] = self._composed[kind].as_bytes(conn)
        return query
