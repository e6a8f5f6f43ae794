"""What every reader yields: one parsed row per record, with the line where it starts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from contacts_cli.domain import FieldError, ImportRow, RowOutcome


class ParsedRow(msgspec.Struct, frozen=True):
    """A record read from a file: raw contact fields (not yet validated) or parse errors.

    A frozen ``msgspec.Struct``: one is built per record, several times cheaper than a
    frozen dataclass.

    ``line`` is 1-based and points at the line where the record starts or, for a record
    rejected because one of its lines is too long or not text, at that line.
    """

    line: int
    data: dict[str, Any] | None
    errors: tuple[FieldError, ...] = ()

    @property
    def ok(self) -> bool:
        return self.data is not None and not self.errors

    @classmethod
    def failed(cls, line: int, message: str, field: str = "record") -> ParsedRow:
        return cls(line, None, (FieldError(field, message),))


def import_chunks(
    rows: Iterable[ParsedRow], chunk_size: int = 500
) -> Iterator[tuple[list[ImportRow], list[RowOutcome]]]:
    """Group parsed rows for the actor: ``(rows to decide, rows already rejected)`` per chunk.

    ``ImportRow.ref`` and ``RowOutcome.ref`` are the line numbers, so a report can say
    ``line 12: emails[1]: ...``.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    good: list[ImportRow] = []
    bad: list[RowOutcome] = []
    for row in rows:
        if row.ok:
            assert row.data is not None
            good.append(ImportRow(row.line, row.data))
        else:
            bad.append(
                RowOutcome(
                    row.line,
                    "rejected",
                    errors=row.errors,
                    reason="; ".join(str(e) for e in row.errors),
                )
            )
        if len(good) + len(bad) >= chunk_size:
            yield good, bad
            good, bad = [], []
    if good or bad:
        yield good, bad
