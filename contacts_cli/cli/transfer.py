"""The batch commands: ``import`` (streamed, idempotent, resumable) and ``export``.

The import pipeline itself is :mod:`contacts_cli.cli.imports`; what it reports,
:mod:`contacts_cli.cli.import_report`. Both are imported only when ``import`` runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from contacts_cli.cli.exits import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, fail
from contacts_cli.cli.options import JsonOption, UserOption
from contacts_cli.cli.render import Output
from contacts_cli.cli.runner import run

if TYPE_CHECKING:
    from contacts_cli.backends.base import ContactsBackend, DuplicatePolicy
    from contacts_cli.io import Format

FormatOpt = Annotated[
    str | None,
    typer.Option("--format", "-f", help="csv, vcf, jsonl or json (default: from the name or "
                                        "the content)."),
]


def import_(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(
        metavar="FILE|-", help="The file to import, or - for stdin.")],
    format_: FormatOpt = None,
    errors: Annotated[Path | None, typer.Option(
        "--errors", metavar="FILE",
        help="Also write every rejected row (line, reason) here: CSV, or JSON Lines for "
             ".jsonl.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Validate everything, write nothing.")] = False,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Validate the whole file first; write nothing if any row is bad.",
    )] = False,
    policy: Annotated[str, typer.Option(
        "--on-duplicate", metavar="skip|update|create",
        help="A row whose email matches a contact's: skip it, update (merge into) the "
             "contact, or create another.")] = "skip",
    chunk_size: Annotated[int, typer.Option(
        "--chunk-size", min=1, max=10_000,
        help="Rows per durable chunk (one journal write each).")] = 5000,
    encoding: Annotated[str, typer.Option(
        "--encoding", help="The file's text encoding (e.g. cp1252 for old Outlook exports).",
    )] = "utf-8-sig",
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="No progress bar.")] = False,
    user: UserOption = "",
    json_: JsonOption = False,
) -> None:
    """Import contacts from CSV (ours, Google, Outlook), vCard 3/4, JSON Lines or JSON.

    The file is streamed; each chunk is durable before its rows are counted as imported.
    Running the same import again after an interruption imports nothing twice: each chunk
    carries an idempotency key derived from its content and position.
    Exits 1 when rows were rejected, 0 when every row was imported or skipped.
    """
    from contacts_cli.cli.imports import ImportJob

    out = Output(json_mode=json_)
    if policy not in ("skip", "update", "create"):
        raise fail(out, f"--on-duplicate must be skip, update or create, got {policy!r}",
                   EXIT_USAGE)
    from contacts_cli.io import parse_format

    fmt = None
    if format_ is not None:
        try:
            fmt = parse_format(format_)
        except ValueError as exc:
            raise fail(out, str(exc), EXIT_USAGE) from None
    try:
        "".encode(encoding)
    except LookupError:
        raise fail(out, f"unknown encoding {encoding!r}", EXIT_USAGE) from None
    if file != "-" and not Path(file).is_file():
        raise fail(out, f"no such file: {file}", EXIT_USAGE)

    job = ImportJob(
        source=file, format=fmt, user=user, policy=cast("DuplicatePolicy", policy),
        chunk_size=chunk_size, encoding=encoding, errors_path=errors,
        progress=not quiet and _stderr_tty(), out=out,
    )
    try:
        summary = run(ctx, out, lambda backend: job.run(backend, dry_run, strict),
                      event_loop=True)
    except typer.Exit as stopped:
        if stopped.exit_code == EXIT_INTERRUPTED and job.summary.rows:
            job.summary.render(out)
            out.message("interrupted: the rows counted above are stored; run the same command "
                        "again to import the rest (nothing is imported twice)")
        raise
    finally:
        job.cleanup()
    summary.render(out)
    raise typer.Exit(EXIT_FAILURE if summary.failed else EXIT_OK)


def _stderr_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def export(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="FILE", help="Write here (atomically) instead of stdout.",
    )] = None,
    format_: FormatOpt = None,
    user: UserOption = "",
) -> None:
    """Export every contact as csv, vcf, jsonl or json (default: from -o's name, else jsonl).

    Importing the export (into any user) gives the same contacts back.
    """
    from contacts_cli.io import format_from_name, parse_format

    out = Output()
    try:
        fmt: Format = parse_format(format_) if format_ else (
            format_from_name(str(output)) if output else None) or "jsonl"
    except ValueError as exc:
        raise fail(out, str(exc), EXIT_USAGE) from None

    if output is None:
        count = run(ctx, out, lambda backend: _export(backend, user, fmt, sys.stdout))
        sys.stdout.flush()
        out.message(f"exported {count} contacts ({fmt})")
        return
    target = output.expanduser()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as sink:
            count = run(ctx, out, lambda backend: _export(backend, user, fmt, sink))
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        raise fail(out, f"cannot write {target}: {exc}", EXIT_FAILURE) from None
    finally:
        tmp.unlink(missing_ok=True)
    out.message(f"exported {count} contacts to {target} ({fmt})")


async def _export(backend: ContactsBackend, user: str, fmt: Format, sink: Any) -> int:
    """Page through the user's contacts and write them as they come (memory stays flat)."""
    import io
    import json

    from contacts_cli.domain import contact_from_dict, contact_to_dict
    from contacts_cli.io import export_contacts

    count = 0
    cursor: str | None = None
    if fmt == "json":
        sink.write("[")
    while True:
        page = await backend.list(user, limit=1000, cursor=cursor)
        contacts = [contact_from_dict(item) for item in page["items"]]
        if fmt == "json":
            for contact in contacts:
                sink.write(",\n" if count else "\n")
                sink.write(json.dumps(contact_to_dict(contact), ensure_ascii=False))
                count += 1
        elif fmt == "csv":
            buffer = io.StringIO()
            export_contacts(contacts, buffer, "csv")
            text = buffer.getvalue()
            sink.write(text if count == 0 else text.split("\r\n", 1)[1])
            count += len(contacts)
        else:
            count += export_contacts(contacts, sink, fmt)
        cursor = page.get("next_cursor")
        if not cursor:
            break
    if fmt == "json":
        sink.write("\n]\n" if count else "]\n")
    return count
