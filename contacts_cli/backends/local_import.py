"""The in-process import pipeline: numbered rows in, one ``Import`` command per chunk.

Rows are cut into chunks of ``chunk_size``; each chunk is one command to the user's actor and
one ``persist_all``, and its outcomes come back once it is durable. A row that could not be
read (a :class:`~contacts_cli.backends.base.RowError`) or is not an object is reported as
rejected without reaching the actor. With an idempotency key each row is journaled under
``<key>#<row number>``, so re-sending the same rows with the same key creates nothing twice,
even after a crash.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from contacts_cli.backends.base import DuplicatePolicy, NumberedRow, Outcome, OutcomeList, RowError
from contacts_cli.backends.errors import Invalid
from contacts_cli.domain import DUPLICATE_POLICIES, ImportRow
from contacts_cli.service.messages import Import

T = TypeVar("T")

Send = Callable[[Import], Awaitable[OutcomeList]]
"""Sends one ``Import`` command to the user's actor and returns its outcomes."""


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """How one import's chunks are decided (the same for each of its chunks)."""

    policy: DuplicatePolicy = "skip"
    dry_run: bool = False
    idempotency_key: str | None = None
    more: bool = False

    def __post_init__(self) -> None:
        if self.policy not in DUPLICATE_POLICIES:
            raise Invalid([("policy", f"must be one of {', '.join(DUPLICATE_POLICIES)}")])


async def numbered(rows: AsyncIterable[T]) -> AsyncIterator[tuple[int, T]]:
    """``rows`` numbered from 1."""
    number = 0
    async for row in rows:
        number += 1
        yield number, row


async def chunks(rows: AsyncIterable[NumberedRow], chunk_size: int, options: ImportOptions,
                 send: Send) -> AsyncIterator[OutcomeList]:
    """Each chunk's outcomes, sorted by row number, once the chunk is durable."""
    if chunk_size < 1:
        raise Invalid([("chunk_size", "must be at least 1")])
    chunk = Chunk()
    async for number, row in rows:
        chunk.add(number, row)
        if len(chunk.rows) >= chunk_size:
            yield await chunk.send(options, send)
            chunk = Chunk()
    if chunk.rows or chunk.early:
        yield await chunk.send(options, send)


async def one_chunk(rows: Iterable[Any], options: ImportOptions, send: Send) -> OutcomeList:
    """``rows`` (numbered 1..n) as one chunk, without a coroutine step per row."""
    chunk = Chunk()
    for number, row in enumerate(rows, 1):
        chunk.add(number, row)
    return await chunk.send(options, send)


class Chunk:
    """The rows of one chunk bound for the actor, and the outcomes known before sending."""

    __slots__ = ("early", "rows")

    def __init__(self) -> None:
        self.rows: list[ImportRow] = []
        self.early: OutcomeList = []

    def add(self, number: int, row: object) -> None:
        if isinstance(row, RowError):
            self.early.append(rejected(number, row.errors))
        elif not isinstance(row, Mapping):
            self.early.append(rejected(number, [("row", "must be an object of contact fields")]))
        else:
            self.rows.append(ImportRow(number, row))

    async def send(self, options: ImportOptions, send: Send) -> OutcomeList:
        outcomes = list(self.early)
        if self.rows:
            outcomes += await send(Import(self.rows, options.policy, options.dry_run,
                                          options.idempotency_key, options.more))
        outcomes.sort(key=lambda o: int(o["row"]))
        return outcomes


def rejected(number: int, errors: list[tuple[str, str]]) -> Outcome:
    return {
        "row": number,
        "outcome": "rejected",
        "id": None,
        "errors": [{"field": f, "message": m} for f, m in errors],
    }
