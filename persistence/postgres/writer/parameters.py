"""The parameters of a batch statement: every column travels as one JSON text.

The batch's columns are sent as JSON text and split server-side (see :mod:`.statements`):
far cheaper in Python than the driver's per-element array dumping, and the server splits
them in C. Splitting costs the server about 0.3 ms per thousand elements, so per event only
the payload (and the tags) is a column of its own; persistence id, sequence number,
position, type and version come from the requests or from *runs* of alike events.

The payloads are the texts :func:`~persistence.engine.encode_payloads` made for each
request, joined into one array without decoding: they are only validated by the server
and stored as sent (the journal's payload column is ``json``). The other columns hold ids,
numbers, types and tags the contract's checks have passed, so orjson encodes them exactly.
"""

from __future__ import annotations

from itertools import groupby
from operator import attrgetter

import orjson

from persistence.engine import NewEvent
from persistence.postgres.writer.request import AppendRequest
from persistence.postgres.writer.statements import ONE_RUN, RUNS, SINGLES, StatementKey

_kind = attrgetter("type", "version")


def _text(column: object) -> str:
    return orjson.dumps(column).decode()


class Columns:
    """The per-event columns of some requests as flat lists, built once per batch: bulk list
    operations instead of a Python loop over every event."""

    __slots__ = ("copies", "events", "payloads", "pids", "seqs")

    def __init__(self, requests: list[AppendRequest]) -> None:
        self.events: list[NewEvent] = []
        self.pids: list[str] = []
        self.seqs: list[int] = []
        if len(requests) == 1:
            self.payloads = requests[0].payloads
            self.copies = requests[0].copies
        else:
            self.payloads = "[" + ",".join([r.payloads[1:-1] for r in requests]) + "]"
            self.copies = [copy for r in requests for copy in r.copies]
        counts = [len(r.events) for r in requests]
        if counts.count(1) == len(counts):
            # Every request one event (many actors' single events): one list comprehension
            # per column.
            self.events = [r.events[0] for r in requests]
            self.pids = [r.persistence_id for r in requests]
            self.seqs = [r.expected_sequence_nr + 1 for r in requests]
            return
        events, pids, seqs = self.events, self.pids, self.seqs
        for request in requests:
            first = request.expected_sequence_nr + 1
            n = len(request.events)
            if n == 1:  # the common case of many actors' single events
                events.append(request.events[0])
                pids.append(request.persistence_id)
                seqs.append(first)
            else:
                events += request.events
                pids += [request.persistence_id] * n
                seqs += range(first, first + n)


RUN_COLUMNS = ("r_req", "r_skip", "r_start", "r_n", "r_type", "r_version")


def runs(
    batch: list[AppendRequest],
) -> tuple[list[int], list[int], list[int], list[int], list[str], list[int]]:
    """The batch's runs, as the columns named in :data:`RUN_COLUMNS`: consecutive events
    of one request alike in type and version; per run its request's number (from 1), the
    events of that request before it, its events before it in the batch, its length, its
    type and version."""
    r_req: list[int] = []
    r_skip: list[int] = []
    r_start: list[int] = []
    r_n: list[int] = []
    r_type: list[str] = []
    r_version: list[int] = []
    start = 0
    for number, request in enumerate(batch, start=1):
        skip = 0
        for (type_, version), alike in groupby(request.events, key=_kind):
            n = len(list(alike))
            r_req.append(number)
            r_skip.append(skip)
            r_start.append(start)
            r_n.append(n)
            r_type.append(type_)
            r_version.append(version)
            skip += n
            start += n
    return r_req, r_skip, r_start, r_n, r_type, r_version


def batch_parameters(
    batch: list[AppendRequest], columns: Columns, writer_id: str
) -> tuple[StatementKey, dict[str, object]]:
    """The kind (``(tagged, shape, fenced)``) and the parameters of the statement that
    writes ``batch``; the leases travel only when a request of the batch has one."""
    events = columns.events
    params: dict[str, object] = {
        "pids": _text([r.persistence_id for r in batch]),
        "expected": _text([r.expected_sequence_nr for r in batch]),
        "e_payload": columns.payloads,
        "writer": writer_id,
    }
    if len(events) == len(batch):
        shape = SINGLES
        params["r_type"] = _text([event.type for event in events])
        params["r_version"] = _text([event.version for event in events])
    else:
        run_columns = runs(batch)
        shape = ONE_RUN if len(run_columns[0]) == 1 else RUNS
        params["counts"] = _text([len(r.events) for r in batch])
        for name, column in zip(RUN_COLUMNS, run_columns, strict=True):
            params[name] = _text(column)
    tagged = any([event.tags for event in events])
    if tagged:
        params.update(_tag_parameters(columns))
    fences = [r.fence for r in batch]
    fenced = any(fences)
    if fenced:
        params["owners"] = _text([f.owner if f is not None else None for f in fences])
        params["epochs"] = _text([f.epoch if f is not None else None for f in fences])
    return (tagged, shape, fenced), params


def _tag_parameters(columns: Columns) -> dict[str, str]:
    """Each event's sorted tags (``null`` for none), and one row per tag for the by-tag
    index: its event's id, sequence number and position in the batch."""
    e_tags: list[list[str] | None] = []
    t_pid: list[str] = []
    t_seq: list[int] = []
    t_idx: list[int] = []
    t_tag: list[str] = []
    for idx, (pid, seq, event) in enumerate(
        zip(columns.pids, columns.seqs, columns.events, strict=True), start=1
    ):
        if event.tags:
            tags = sorted(event.tags)
            e_tags.append(tags)
            for tag in tags:
                t_pid.append(pid)
                t_seq.append(seq)
                t_idx.append(idx)
                t_tag.append(tag)
        else:
            e_tags.append(None)
    return {
        "e_tags": _text(e_tags),
        "t_pid": _text(t_pid),
        "t_seq": _text(t_seq),
        "t_idx": _text(t_idx),
        "t_tag": _text(t_tag),
    }
