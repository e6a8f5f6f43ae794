"""How the CLI prints results: plain JSON, Rich tables on a terminal, plain text otherwise.

Every renderer takes the JSON-ready dicts both backends return, so the same command prints
the same output in-process and in client mode. Rich is imported only when stdout (or stderr,
for messages) is a terminal, which keeps scripted calls fast; Rich honours ``NO_COLOR``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

# The columns a contact list shows, in this order, when the contacts carry them.
LIST_COLUMNS = ("id", "name", "emails", "phones", "company", "labels")
# Keys a detail view shows first; the rest follow in the order the backend gave them.
DETAIL_FIRST = ("id", "name")
HISTORY_TIME_KEYS = ("timestamp", "at", "time", "occurred_at", "created_at")
HISTORY_TYPE_KEYS = ("type", "event", "kind")
HISTORY_SEQ_KEYS = ("version", "sequence_nr", "seq")


def dumps(value: Any) -> str:
    """JSON text as the CLI prints it: UTF-8 kept readable, stable key order from the backend."""
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def format_value(value: Any) -> str:
    """One cell's text: lists joined by commas, mappings as ``key=value``, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={format_value(v)}" for k, v in value.items() if v not in (None, ""))
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def list_columns(items: Sequence[Mapping[str, Any]]) -> list[str]:
    """The columns to show for ``items``: the known ones they carry, else their scalar keys."""
    present: dict[str, None] = {}
    for item in items:
        for key in item:
            present.setdefault(key, None)
    chosen = [c for c in LIST_COLUMNS if c in present]
    if len(chosen) > 1:
        return chosen
    return [k for k in present if not isinstance(items[0].get(k), (dict, list))] or list(present)


def detail_rows(contact: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(field, text)`` pairs for a detail view, identity first, empty fields left out."""
    keys = [k for k in DETAIL_FIRST if k in contact]
    keys += [k for k in contact if k not in keys]
    return [(k, format_value(contact[k])) for k in keys if contact[k] not in (None, "", [], {})]


def _first(event: Mapping[str, Any], keys: Iterable[str]) -> tuple[str | None, Any]:
    for key in keys:
        if key in event:
            return key, event[key]
    return None, None


def history_rows(events: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str, str]]:
    """``(seq, time, type, details)`` per event of a timeline."""
    rows = []
    for event in events:
        seq_key, seq = _first(event, HISTORY_SEQ_KEYS)
        time_key, when = _first(event, HISTORY_TIME_KEYS)
        type_key, kind = _first(event, HISTORY_TYPE_KEYS)
        changes = event.get("changes")
        if isinstance(changes, Mapping):
            shown = {k: v for k, v in changes.items() if v not in (None, "", [], {})}
            cleared = [k for k, v in changes.items() if v in (None, "", [], {})]
            details = format_value(shown)
            if cleared and "Created" not in str(kind):
                details = ", ".join(filter(None, [details, "cleared " + ", ".join(cleared)]))
            if not changes and "Removed" in str(kind):
                details = "removed"
        else:
            used = {seq_key, time_key, type_key}
            details = format_value({k: v for k, v in event.items() if k not in used})
        rows.append((format_value(seq), format_value(when), format_value(kind), details))
    return rows


def flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested mappings as dotted ``(key, text)`` pairs, for stats and status views."""
    if isinstance(value, Mapping):
        out: list[tuple[str, str]] = []
        for key, inner in value.items():
            out += flatten(inner, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(value, float):
        return [(prefix, f"{value:.6g}")]
    return [(prefix, format_value(value))]


class Output:
    """Prints results to stdout and messages to stderr, choosing the format once."""

    def __init__(
        self,
        *,
        json_mode: bool = False,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> None:
        self.json_mode = json_mode
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self._console: Console | None = None
        self._err_console: Console | None = None

    @property
    def rich(self) -> bool:
        """Whether stdout is a terminal (tables and colours) and JSON was not asked for."""
        return not self.json_mode and _isatty(self.stdout)

    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stdout, highlight=False)
        return self._console

    def err_console(self) -> Console:
        if self._err_console is None:
            from rich.console import Console

            self._err_console = Console(file=self.stderr, highlight=False)
        return self._err_console

    # -- plumbing --------------------------------------------------------------------------

    def line(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def json(self, value: Any) -> None:
        self.line(dumps(value))

    def message(self, text: str, style: str = "") -> None:
        """A note for humans on stderr (never mixed into the results on stdout)."""
        if style and _isatty(self.stderr):
            self.err_console().print(text, style=style, markup=False)
        else:
            self.stderr.write(text + "\n")
            self.stderr.flush()

    def error(self, text: str) -> None:
        self.message(f"error: {text}", "bold red")

    def _table(self, headers: Sequence[str], rows: Iterable[Sequence[str]],
               title: str | None = None) -> None:
        if self.rich:
            from rich.table import Table

            table = Table(*headers, title=title, header_style="bold cyan", title_justify="left")
            for row in rows:
                table.add_row(*row)
            self.console().print(table)
        else:
            self.line("\t".join(headers))
            for row in rows:
                self.line("\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in row))

    def _pairs(self, pairs: Sequence[tuple[str, str]], title: str | None = None) -> None:
        if self.rich:
            from rich.table import Table

            table = Table(show_header=False, box=None, title=title, title_justify="left",
                          title_style="bold")
            table.add_column(style="cyan")
            table.add_column()
            for key, text in pairs:
                table.add_row(key, text)
            self.console().print(table)
        else:
            width = max((len(k) for k, _ in pairs), default=0)
            for key, text in pairs:
                self.line(f"{key + ':':<{width + 1}} {text}")

    # -- views -----------------------------------------------------------------------------

    def contact(self, contact: Mapping[str, Any]) -> None:
        if self.json_mode:
            self.json(contact)
        else:
            self._pairs(detail_rows(contact))

    def contacts(self, items: Sequence[Mapping[str, Any]], *, title: str | None = None) -> None:
        if self.json_mode:
            self.json(list(items))
            return
        if not items:
            self.message("no contacts")
            return
        columns = list_columns(items)
        self._table(columns, ([format_value(i.get(c)) for c in columns] for i in items), title)

    def history(self, events: Sequence[Mapping[str, Any]]) -> None:
        if self.json_mode:
            self.json(list(events))
            return
        self._table(("#", "time", "event", "details"), history_rows(events))

    def mapping(self, value: Mapping[str, Any], *, title: str | None = None) -> None:
        if self.json_mode:
            self.json(value)
        else:
            self._pairs(flatten(value), title)

    def records(self, items: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
        """Rows of arbitrary records (journal rows, rejected rows) under fixed columns."""
        if self.json_mode:
            self.json(list(items))
            return
        self._table(columns, ([format_value(i.get(c)) for c in columns] for i in items))


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
