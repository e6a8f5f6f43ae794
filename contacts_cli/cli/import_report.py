"""What ``contacts import`` tells its user: the summary, the rejected rows, the progress bar.

Rows are counted only once their chunk's write is durable (the pipeline in
:mod:`contacts_cli.cli.imports` calls :meth:`ImportSummary.add` then), so everything the
summary reports survives a crash. At most :data:`MAX_REJECTS_SHOWN` rejected rows are kept
in memory for the summary; ``--errors FILE`` receives every one of them.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contacts_cli.cli.render import Output

REPLAYED_REASON = "already imported with this Idempotency-Key"
MAX_REJECTS_SHOWN = 1000


@dataclass
class Rejected:
    line: int
    errors: list[tuple[str, str]]

    @property
    def reason(self) -> str:
        return "; ".join(f"{f}: {m}" if f else m for f, m in self.errors)


@dataclass
class ImportSummary:
    """What an import did, row by row counted once its chunk was durable."""

    dry_run: bool = False
    strict: bool = False
    imported: int = 0
    updated: int = 0
    skipped: int = 0
    already_imported: int = 0
    rejected: int = 0
    rejects: list[Rejected] = field(default_factory=list)
    rejects_dropped: int = 0
    aborted: str | None = None
    errors_file: Path | None = None
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return (self.imported + self.updated + self.skipped + self.already_imported
                + self.rejected)

    @property
    def failed(self) -> bool:
        return self.rejected > 0 or self.aborted is not None

    def add(self, line: int, outcome: dict[str, Any]) -> Rejected | None:
        kind = outcome.get("outcome")
        if kind == "rejected":
            errors = [(str(e.get("field", "")), str(e.get("message", "")))
                      for e in outcome.get("errors") or []]
            return self.reject(line, errors or [("", str(outcome.get("reason", "rejected")))])
        if outcome.get("reason") == REPLAYED_REASON:
            self.already_imported += 1
        elif kind == "created":
            self.imported += 1
        elif kind == "updated":
            self.updated += 1
        else:
            self.skipped += 1
        return None

    def reject(self, line: int, errors: list[tuple[str, str]]) -> Rejected:
        self.rejected += 1
        rejected = Rejected(line, errors)
        if len(self.rejects) < MAX_REJECTS_SHOWN:
            self.rejects.append(rejected)
        else:
            self.rejects_dropped += 1
        return rejected

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "imported": self.imported,
            "updated": self.updated,
            "skipped_duplicates": self.skipped,
            "already_imported": self.already_imported,
            "rejected": self.rejected,
            "rows": self.rows,
            "rejected_rows": [{"line": r.line, "reason": r.reason,
                               "errors": [{"field": f, "message": m} for f, m in r.errors]}
                              for r in self.rejects],
            "rejected_rows_omitted": self.rejects_dropped,
            "aborted": self.aborted,
            "seconds": round(self.seconds, 3),
        }

    def render(self, out: Output) -> None:
        if out.json_mode:
            out.json(self.to_json())
            return
        would = "would import" if self.dry_run else "imported"
        parts = [f"{would} {self.imported}"]
        if self.updated:
            parts.append(f"{'would update' if self.dry_run else 'updated'} {self.updated}")
        parts.append(f"skipped as duplicates {self.skipped}")
        if self.already_imported:
            parts.append(f"already imported earlier {self.already_imported}")
        parts.append(f"rejected {self.rejected}")
        out.line(", ".join(parts))
        for rejected in self.rejects:
            out.line(f"  line {rejected.line}: {rejected.reason}")
        if self.rejects_dropped:
            where = f"all are in {self.errors_file}" if self.errors_file else \
                "use --errors FILE to keep them all"
            out.line(f"  ... and {self.rejects_dropped} more rejected rows ({where})")
        elif self.rejected and self.errors_file:
            out.line(f"  rejected rows also written to {self.errors_file}")
        if self.aborted:
            out.message(self.aborted, "bold red")
        if self.seconds:
            # Timings vary from run to run: stderr, so stdout is the same in both modes.
            rate = f" ({self.rows / self.seconds:,.0f} rows/s)" if self.rows else ""
            out.message(f"took {self.seconds:.1f} s{rate}")


class ErrorsFile:
    """``--errors FILE``: every rejected row as CSV (line, reason) or JSON Lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.jsonl = path.suffix.lower() in (".jsonl", ".ndjson", ".json")
        self._file: IO[str] = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._csv = None if self.jsonl else csv.writer(self._file)
        if self._csv is not None:
            self._csv.writerow(["line", "reason"])

    def write(self, rejected: Rejected) -> None:
        if self._csv is not None:
            self._csv.writerow([rejected.line, rejected.reason])
        else:
            self._file.write(json.dumps({
                "line": rejected.line, "reason": rejected.reason,
                "errors": [{"field": f, "message": m} for f, m in rejected.errors],
            }, ensure_ascii=False) + "\n")

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class ImportProgress:
    """A Rich progress bar on stderr: bytes read for the bar and ETA, contacts for the rate."""

    def __init__(self, total: int | None, label: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._started = time.monotonic()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rows]:>9,} rows"),
            TextColumn("{task.fields[rate]:>8,.0f} rows/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            transient=True,
        )
        self._task = self._progress.add_task(label, total=total, rows=0, rate=0.0)
        self._progress.start()

    def update(self, position: int, rows: int) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        self._progress.update(self._task, completed=position, rows=rows, rate=rows / elapsed)

    def close(self) -> None:
        self._progress.stop()
