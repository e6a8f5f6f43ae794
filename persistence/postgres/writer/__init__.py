"""The journal write path of the PostgreSQL engine: start reading here.

An append travels, in this order:

1. :meth:`PostgresEngine.append <persistence.postgres.engine.PostgresEngine.append>` runs
   the contract's checks once (:func:`~persistence.engine.check_append`) and encodes the
   payloads into one JSON array text (:func:`~persistence.engine.encode_payloads`), so
   nothing unstorable is ever queued;
2. :mod:`.batching`: the :class:`GroupCommitWriter` queues the request and forms batches
   (the group-commit loop), keeping per-id order;
3. :mod:`.commit`: one batch is written by one statement, retried on deadlock, isolated
   request by request when the server refuses it, and every caller answered (stored
   events, :class:`~persistence.errors.ConcurrencyConflict`, or an error);
4. :mod:`.parameters` packs the batch's columns as JSON texts, :mod:`.statements` holds
   the statement's three shapes, :mod:`.connections` the connections kept between
   batches, :mod:`.request` the queued request;
5. :mod:`persistence.postgres.events` builds the stored events the callers receive, and
   :mod:`persistence.postgres.ordering` explains their global ``ordering``.
"""

from persistence.postgres.writer.batching import GroupCommitWriter
from persistence.postgres.writer.request import AppendRequest

__all__ = ["AppendRequest", "GroupCommitWriter"]
