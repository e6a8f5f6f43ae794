"""``contacts import`` and ``export`` end to end against a real PostgreSQL, in both modes:
bad rows with line numbers, mixed line endings, a BOM, quoted commas, non-ASCII names,
vCard 3.0 and 4.0, JSON Lines from stdin, Google and Outlook headers, --dry-run, --strict,
--errors, idempotent re-runs, export/import round trips, and a killed 50,000-row import."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.cli.conftest import CONTACTS, Env, Server

MODES = ("local", "client")

# Line 1 header (after a BOM), CRLF, LF and a lone CR as line ends; line 3 has a bad email,
# line 5 a bad phone, line 6 a missing name; line 7's quoted cell spans two lines.
MESSY_CSV = (
    "\ufeffname,emails,phones,notes,labels\r\n"
    '"Zoë, the first",zoe@example.org,,"ACME, Inc",friends;work\r\n'
    "Bad Email,not-an-email,,,\n"
    "José Núñez,,+34 600 000 000,,\r"
    "Bad Phone,bp@example.org,12,,\n"
    ",nobody@example.org,,,\r\n"
    '"Multi Line",ml@example.org,,"Line one\nline two",\n'
    "Ørjan Ødegård,orjan@example.no,,,\n"
)
MESSY_GOOD = ["José Núñez", "Multi Line", "Zoë, the first", "Ørjan Ødegård"]
MESSY_BAD_LINES = [3, 5, 6]


def names(env: Env, user: str) -> list[str]:
    result = env.cli("ls", "--all", "--json", "--limit", "1000", user=user)
    assert result.code == 0, result.stderr
    return [c["name"] for c in result.json()]  # type: ignore[union-attr]


def count(env: Env, user: str) -> int:
    result = env.run("export", "-f", "jsonl", user=user)
    assert result.code == 0, result.stderr
    return len(result.stdout.splitlines())


@pytest.mark.parametrize("mode", MODES)
def test_messy_csv_reports_bad_rows_by_line_and_imports_the_rest(
    cli_env: Env, server: Server, tmp_path: Path, mode: str
) -> None:
    source = tmp_path / "messy.csv"
    source.write_bytes(MESSY_CSV.encode())
    errors = tmp_path / "errors.csv"
    user = f"messy-{mode}"
    result = cli_env.cli("import", str(source), "--errors", str(errors), user=user, mode=mode,
                         server=server.url)
    assert result.code == 1, result.stderr
    first = result.stdout.splitlines()[0]
    assert first == "imported 4, skipped as duplicates 0, rejected 3"
    assert "took " in result.stderr and "rows/s" in result.stderr
    for line in MESSY_BAD_LINES:
        assert f"  line {line}: " in result.stdout
    assert "emails[0]" in result.stdout and "phones[0]" in result.stdout
    assert "name: is required" in result.stdout
    with open(errors, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["line"]) for r in rows] == MESSY_BAD_LINES
    assert sorted(names(cli_env, user)) == sorted(MESSY_GOOD)
    shown = cli_env.cli("search", "multi", "--json", user=user).json()
    assert shown[0]["notes"] == "Line one\nline two"  # type: ignore[index]

    again = cli_env.cli("import", str(source), "--json", user=user, mode=mode,
                        server=server.url)
    summary = again.json()
    assert isinstance(summary, dict)
    assert summary["imported"] == 0 and summary["already_imported"] == 4
    assert summary["rejected"] == 3
    assert [r["line"] for r in summary["rejected_rows"]] == MESSY_BAD_LINES
    assert sorted(names(cli_env, user)) == sorted(MESSY_GOOD)


def test_import_prints_the_same_in_both_modes(cli_env: Env, server: Server,
                                              tmp_path: Path) -> None:
    source = tmp_path / "messy.csv"
    source.write_bytes(MESSY_CSV.encode())
    local = cli_env.cli("import", str(source), user="same-local")
    client = cli_env.cli("import", str(source), user="same-client", mode="client",
                         server=server.url)
    assert (client.code, client.stdout) == (local.code, local.stdout) and local.code == 1
    dry_local = cli_env.cli("import", str(source), "--dry-run", user="same-local")
    dry_client = cli_env.cli("import", str(source), "--dry-run", user="same-client",
                             mode="client", server=server.url)
    assert dry_client.stdout == dry_local.stdout


def test_an_import_resumed_in_the_other_mode_duplicates_nothing(
    cli_env: Env, server: Server, tmp_path: Path
) -> None:
    source = tmp_path / "no-emails.csv"
    source.write_text("name,phones\nNo Email One,\nNo Email Two,+1 415 555 0100\n")
    assert cli_env.cli("import", str(source), user="cross").code == 0
    again = cli_env.cli("import", str(source), "--json", user="cross", mode="client",
                        server=server.url)
    assert again.json()["already_imported"] == 2  # type: ignore[index]
    assert sorted(names(cli_env, "cross")) == ["No Email One", "No Email Two"]


def test_dry_run_writes_nothing_and_strict_writes_nothing_when_a_row_is_bad(
    cli_env: Env, tmp_path: Path
) -> None:
    source = tmp_path / "messy.csv"
    source.write_bytes(MESSY_CSV.encode())
    dry = cli_env.cli("import", str(source), "--dry-run", user="careful")
    assert dry.code == 1 and dry.stdout.startswith("would import 4")
    assert names(cli_env, "careful") == []
    strict = cli_env.cli("import", str(source), "--strict", user="careful")
    assert strict.code == 1 and "nothing was imported" in strict.stderr
    assert "line 3:" in strict.stdout
    assert names(cli_env, "careful") == []

    good = tmp_path / "good.csv"
    good.write_text("name,emails\nStrict One,s1@example.org\nStrict Two,s2@example.org\n")
    ok = cli_env.cli("import", str(good), "--strict", user="careful")
    assert ok.code == 0 and ok.stdout.startswith("imported 2")
    assert names(cli_env, "careful") == ["Strict One", "Strict Two"]


@pytest.mark.parametrize("mode", MODES)
def test_jsonl_from_stdin_and_vcards_3_and_4(
    cli_env: Env, server: Server, tmp_path: Path, mode: str
) -> None:
    user = f"formats-{mode}"
    lines = "\n".join([
        json.dumps({"name": "Jay Son", "emails": ["jay@example.org"]}),
        "{not json",
        json.dumps({"name": "Émilie Json", "labels": ["fr"]}),
    ]) + "\n"
    piped = cli_env.run("import", "-", "--format", "jsonl", user=user, mode=mode,
                        server=server.url, stdin=lines)
    assert piped.code == 1 and piped.stdout.startswith("imported 2")
    assert "line 2:" in piped.stdout

    vcards = tmp_path / "cards.vcf"
    vcards.write_text(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Card;Three;;;\r\nFN:Three Card\r\n"
        "EMAIL;TYPE=INTERNET:three@example.org\r\nTEL;TYPE=CELL:+1 415 555 0199\r\n"
        "END:VCARD\r\n"
        "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Fyra Kört\r\nEMAIL:fyra@example.se\r\n"
        "ORG:Kort AB\r\nEND:VCARD\r\n",
        encoding="utf-8",
    )
    carded = cli_env.run("import", str(vcards), user=user, mode=mode, server=server.url)
    assert carded.code == 0, carded.stdout + carded.stderr
    assert carded.stdout.startswith("imported 2")
    assert sorted(names(cli_env, user)) == ["Fyra Kört", "Jay Son", "Three Card", "Émilie Json"]


def test_google_and_outlook_headers_are_recognised(cli_env: Env, tmp_path: Path) -> None:
    google = tmp_path / "google.csv"
    google.write_text(
        "Name,Given Name,Family Name,E-mail 1 - Value,Phone 1 - Value,Organization 1 - Name,"
        "Group Membership\n"
        "Gina Google,Gina,Google,gina@example.org,+1 415 555 0111,Alphabet,* myContacts\n")
    outlook = tmp_path / "outlook.csv"
    outlook.write_text(
        "First Name,Last Name,Company,Job Title,E-mail Address,Mobile Phone,Categories\n"
        "Otto,Outlook,Contoso,Manager,otto@example.org,+1 415 555 0122,VIP\n")
    for path in (google, outlook):
        result = cli_env.cli("import", str(path), user="providers")
        assert result.code == 0 and result.stdout.startswith("imported 1"), result.stdout
    listed = {c["name"]: c for c in cli_env.cli("ls", "--json", user="providers").json()}  # type: ignore[union-attr]
    assert listed["Gina Google"]["emails"] == ["gina@example.org"]
    assert listed["Gina Google"]["company"] == "Alphabet"
    assert listed["Otto Outlook"]["title"] == "Manager"
    assert listed["Otto Outlook"]["phones"] == ["+14155550122"]


@pytest.mark.parametrize("fmt", ["csv", "vcf", "jsonl", "json"])
def test_export_then_import_into_another_user_gives_the_same_contacts(
    cli_env: Env, server: Server, tmp_path: Path, fmt: str
) -> None:
    source = tmp_path / "messy.csv"
    source.write_bytes(MESSY_CSV.encode())
    origin = f"origin-{fmt}"
    cli_env.cli("import", str(source), user=origin)
    cli_env.cli("edit", cli_env.cli("ls", "--json", user=origin).json()[0]["id"],  # type: ignore[index]
                "--birthday", "1815-12-10", "--address", "12 St James's Sq\nLondon",
                "--notes", "semi;colon, comma", user=origin)
    exported = tmp_path / f"contacts.{fmt}"
    done = cli_env.run("export", "-o", str(exported), user=origin, mode="client",
                       server=server.url)
    assert done.code == 0 and f"exported 4 contacts to {exported}" in done.stderr
    copy = f"copy-{fmt}"
    imported = cli_env.cli("import", str(exported), user=copy)
    assert imported.code == 0, imported.stdout
    original = cli_env.run("export", "-f", "csv", user=origin).stdout
    copied = cli_env.run("export", "-f", "csv", user=copy).stdout
    assert copied == original
    assert len(list(csv.DictReader(original.splitlines(keepends=True)))) == 4


def _journal_rows(env: Env) -> int:
    with psycopg.connect(env.database_url, autocommit=True) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(env.schema), sql.Identifier("journal"))).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.slow
def test_an_import_killed_midway_and_run_again_ends_with_exactly_every_row(
    cli_env: Env, tmp_path: Path
) -> None:
    source = tmp_path / "big.csv"
    with open(source, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "emails", "phones"])
        for i in range(50_000):
            # Every fifth contact has no email: those must not duplicate either.
            email = "" if i % 5 == 0 else f"bulk{i}@example.org"
            writer.writerow([f"Bulk Ñame {i}", email, ""])
    user = "bulk"
    assert cli_env.run("db", "migrate", mode=None).code == 0
    before = _journal_rows(cli_env)
    proc = subprocess.Popen([CONTACTS, "--local", "import", str(source), "-u", user],
                            env={**os.environ, **cli_env.vars}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _journal_rows(cli_env) - before < 5_000:
        assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the import wrote nothing in 120 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = _journal_rows(cli_env) - before
    assert 0 < stored < 50_000

    again = cli_env.run("import", str(source), "--json", user=user, timeout=600)
    assert again.code == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["already_imported"] + summary["imported"] == 50_000
    assert summary["already_imported"] == stored  # every durable row is recognised
    assert count(cli_env, user) == 50_000


def test_a_bad_byte_far_into_the_file_is_a_reject_at_its_exact_line(
    cli_env: Env, tmp_path: Path
) -> None:
    """Past the first read chunks, a byte that is not UTF-8 rejects that record at its own
    line (it was reported thousands of lines early, or stopped the import), and the rows
    around it are imported."""
    lines = ["name,emails"] + [f"Person {n},p{n}@example.org" for n in range(2, 40_010)]
    bad_line = 40_002
    data = "\n".join(lines).encode() + b"\n"
    head, _, tail = data.partition(f"Person {bad_line},".encode())
    source = tmp_path / "bad-byte.csv"
    source.write_bytes(head + f"Person {bad_line}\xff,".encode("latin-1") + tail)
    result = cli_env.cli("import", str(source), "--json", user="bad-byte", mode="local")
    assert result.code == 1, result.stderr
    summary = result.json()
    assert isinstance(summary, dict)
    assert summary["rejected"] == 1, summary
    assert [r["line"] for r in summary["rejected_rows"]] == [bad_line], summary
    assert summary["imported"] == 40_007
