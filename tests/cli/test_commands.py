"""Every contact command end to end against a real PostgreSQL, in-process and in client mode,
through Typer's CliRunner and as a real subprocess; both modes must print the same output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.cli.conftest import Env, Server, free_port, start_server, stop_server

MODES = ("local", "client")


def _add(env: Env, *args: str, user: str, **kw: str) -> dict[str, object]:
    result = env.cli("add", *args, "--json", user=user, **kw)  # type: ignore[arg-type]
    assert result.code == 0, result.stderr
    data = result.json()
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def seeded(cli_env: Env, server: Server) -> dict[str, str]:
    """Three contacts of user 'seed', one edited, written in-process."""
    ada = _add(cli_env, "Ada Lovelace", "-e", "ada@example.org", "-p", "+44 20 7946 0000",
               "-l", "math", user="seed")
    zoe = _add(cli_env, "Zoë Åström", "-e", "zoe@example.se", "--company", "Ångström AB",
               user="seed")
    _add(cli_env, "Grace Hopper", "-e", "grace@example.org", "-l", "navy", user="seed")
    edited = cli_env.cli("edit", str(ada["id"]), "--company", "Analytical Engines",
                         "--clear", "phones", "--expect-version", "1", "--json", user="seed")
    assert edited.code == 0, edited.stderr
    after_edit = datetime.now(UTC).isoformat()
    time.sleep(0.05)
    cli_env.cli("edit", str(zoe["id"]), "--title", "Engineer", user="seed")
    return {"ada": str(ada["id"]), "zoe": str(zoe["id"]), "after_edit": after_edit}


READS = [
    ("ls",),
    ("list", "--json"),
    ("ls", "--limit", "2"),
    ("show", "{ada}"),
    ("show", "{ada}", "--json"),
    ("show", "{zoe}", "--as-of", "{after_edit}"),
    ("history", "{ada}"),
    ("history", "{zoe}", "--json"),
    ("search", "ada"),
    ("search", "label:navy", "--json"),
    ("export", "-f", "csv"),
    ("export", "-f", "jsonl"),
    ("export", "-f", "vcf"),
    ("export", "-f", "json"),
    ("show", "no-such-id"),
    ("edit", "{ada}", "--company", "X", "--expect-version", "1"),
    ("add", "--company", "Nameless"),
    ("add", "Bad", "-e", "not-an-email"),
    ("rm", "{ada}"),
]


@pytest.mark.parametrize("args", READS, ids=[" ".join(a) for a in READS])
def test_both_modes_print_the_same(cli_env: Env, server: Server, seeded: dict[str, str],
                                   args: tuple[str, ...]) -> None:
    argv = [a.format(**seeded) for a in args]
    local = cli_env.cli(*argv, user="seed")
    client = cli_env.cli(*argv, user="seed", mode="client", server=server.url)
    assert (client.code, client.stdout, client.stderr) == (local.code, local.stdout, local.stderr)


def test_exit_codes_and_read_outputs(cli_env: Env, seeded: dict[str, str]) -> None:
    ada, zoe = seeded["ada"], seeded["zoe"]
    assert cli_env.cli("show", "no-such-id", user="seed").code == 3
    stale = cli_env.cli("edit", ada, "--company", "X", "--expect-version", "1", user="seed")
    assert stale.code == 4 and "version" in stale.stderr
    invalid = cli_env.cli("add", "Bad", "-e", "not-an-email", user="seed")
    assert invalid.code == 2 and "emails[0]" in invalid.stderr
    assert cli_env.cli("rm", ada, user="seed").code == 2  # no terminal, no --yes

    listed = cli_env.cli("ls", "--json", user="seed").json()
    assert isinstance(listed, list)
    assert [c["name"] for c in listed] == ["Ada Lovelace", "Grace Hopper", "Zoë Åström"]
    shown = cli_env.cli("show", ada, "--json", user="seed").json()
    assert isinstance(shown, dict)
    assert shown["company"] == "Analytical Engines" and shown["phones"] == []
    assert shown["version"] == 2

    history = cli_env.cli("history", ada, "--json", user="seed").json()
    assert isinstance(history, list)
    assert [h["type"] for h in history] == ["ContactCreated", "ContactUpdated"]
    table = cli_env.cli("history", ada, user="seed").stdout.splitlines()
    assert table[0].split("\t") == ["#", "time", "event", "details"]
    assert "company=Analytical Engines" in table[2] and "cleared phones" in table[2]

    before = cli_env.cli("show", zoe, "--as-of", seeded["after_edit"], "--json", user="seed")
    assert before.code == 0
    then = before.json()
    assert isinstance(then, dict) and then.get("title") is None
    now = cli_env.cli("show", zoe, "--json", user="seed").json()
    assert isinstance(now, dict) and now["title"] == "Engineer"
    long_ago = cli_env.cli("show", zoe, "--as-of", "2000-01-01T00:00:00Z", user="seed")
    assert long_ago.code == 3

    found = cli_env.cli("search", "ångström", "--json", user="seed").json()
    assert isinstance(found, list) and [c["id"] for c in found] == [zoe]


def test_writes_in_client_mode_are_seen_in_process(cli_env: Env, server: Server) -> None:
    added = cli_env.cli("add", "Client Made", "-e", "cm@example.org", "--json", user="writer",
                        mode="client", server=server.url)
    assert added.code == 0, added.stderr
    cid = added.json()["id"]  # type: ignore[index]
    edited = cli_env.cli("edit", cid, "--notes", "via HTTP", "--json", user="writer",
                         mode="client", server=server.url)
    assert edited.code == 0 and edited.json()["version"] == 2  # type: ignore[index]
    shown = cli_env.cli("show", cid, "--json", user="writer").json()
    assert isinstance(shown, dict) and shown["notes"] == "via HTTP"
    removed = cli_env.cli("rm", cid, "--yes", user="writer", mode="client", server=server.url)
    assert removed.code == 0 and removed.stdout.startswith(f"removed {cid}")
    assert cli_env.cli("show", cid, user="writer").code == 3
    gone = cli_env.cli("rm", cid, "--yes", user="writer", mode="client", server=server.url)
    assert gone.code == 3


@pytest.mark.parametrize("mode", MODES)
def test_every_command_as_a_subprocess(cli_env: Env, server: Server, mode: str) -> None:
    user = f"sub-{mode}"

    def run(*args: str) -> object:
        result = cli_env.run(*args, mode=mode, server=server.url, user=user)
        assert result.code == 0, (args, result.stderr)
        return result

    added = json.loads(run("add", "Sub Process", "-e", "sp@example.org", "--json").stdout)
    cid = added["id"]
    assert "Sub Process" in run("ls").stdout
    assert "Sub Process" in run("list").stdout
    assert json.loads(run("show", cid, "--json").stdout)["emails"] == ["sp@example.org"]
    run("edit", cid, "--company", "Pipes Ltd", "--expect-version", "1")
    assert [c["id"] for c in json.loads(run("search", "pipes", "--json").stdout)] == [cid]
    assert len(json.loads(run("history", cid, "--json").stdout)) == 2
    assert "Pipes Ltd" in run("export", "-f", "csv").stdout
    stats = json.loads(run("stats", "--json").stdout)
    assert stats["users"] >= 1
    removed = run("rm", cid, "--yes")
    assert "removed" in removed.stdout  # type: ignore[attr-defined]
    missing = cli_env.run("show", cid, mode=mode, server=server.url, user=user)
    assert missing.code == 3 and "not found" in missing.stderr


def test_db_commands(cli_env: Env, seeded: dict[str, str]) -> None:
    status = cli_env.run("db", "status", "--json", mode=None)
    assert status.code == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["reachable"] is True and data["schema"] == cli_env.schema
    assert data["journal"]["users"] >= 1 and data["journal"]["events"] >= 5
    migrated = cli_env.run("db", "migrate", mode=None)
    assert migrated.code == 0 and "up to date" in migrated.stdout
    journal = cli_env.run("db", "journal", "seed", "--json", mode=None)
    rows = json.loads(journal.stdout)
    assert [r["sequence_nr"] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0]["type"] == "ContactCreated"
    assert rows[0]["payload"]["fields"]["name"] == "Ada Lovelace"
    assert rows[0]["persistence_id"].endswith("/seed")
    table = cli_env.run("db", "journal", "seed", "--limit", "1", mode=None)
    assert len(table.stdout.splitlines()) == 2


def test_discovery_uses_a_running_server_unless_local(cli_env: Env, server: Server) -> None:
    """Told apart by the answering process's pid and what only the server has seen (a user
    it woke), not by its uptime."""
    assert cli_env.run("ls", mode=None, user="discovery").code == 0
    through_server = json.loads(cli_env.run("stats", "--json", mode=None).stdout)
    in_process = json.loads(cli_env.run("stats", "--json", mode="local").stdout)
    assert through_server["cluster"]["pid"] == server.process.pid
    assert in_process["cluster"]["pid"] != server.process.pid
    assert through_server["live_users"] >= 1
    assert in_process["live_users"] == 0


def test_stale_server_file_is_ignored(cli_env: Env, tmp_path: Path) -> None:
    other = Env({**cli_env.vars, "CONTACTS_DATA_DIR": str(tmp_path)}, tmp_path, cli_env.schema,
                cli_env.database_url)
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    (tmp_path / "server.json").write_text(json.dumps({
        "url": f"http://127.0.0.1:{free_port()}", "pid": dead,
        "database": f"{cli_env.database_url}#{cli_env.schema}"}))
    result = other.run("ls", mode=None, user="seed")
    assert result.code == 0, result.stderr


def test_a_second_server_on_the_same_data_dir_is_refused(cli_env: Env, server: Server) -> None:
    second = cli_env.run("serve", "--port", str(free_port()), mode=None, timeout=60)
    assert second.code == 1 and "already serves" in second.stderr


def test_server_file_goes_away_when_the_server_stops(cli_env: Env, tmp_path: Path) -> None:
    other = Env({**cli_env.vars, "CONTACTS_DATA_DIR": str(tmp_path)}, tmp_path, cli_env.schema,
                cli_env.database_url)
    running = start_server(other)
    assert json.loads((tmp_path / "server.json").read_text())["url"] == running.url
    running.process.send_signal(signal.SIGINT)
    running.process.wait(timeout=30)
    assert running.process.returncode == 0
    assert not (tmp_path / "server.json").exists()
    stop_server(running)


def test_unreachable_database_and_service_exit_5(cli_env: Env) -> None:
    port = free_port()
    down = cli_env.run("ls", mode="local",
                       extra_env={"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/x"})
    assert down.code == 5 and f"127.0.0.1:{port}" in down.stderr
    no_service = cli_env.run("ls", mode="client", server=f"http://127.0.0.1:{port}")
    assert no_service.code == 5 and "cannot reach" in no_service.stderr


def test_flag_beats_environment_beats_dotenv(cli_env: Env, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CONTACTS_USER=dotenv-user\nCONTACTS_TIMEOUT=7\n")
    env = {k: v for k, v in cli_env.vars.items() if k != "CONTACTS_USER"}
    plain = Env(env, cli_env.data_dir, cli_env.schema, cli_env.database_url)
    saved = os.environ.pop("CONTACTS_USER", None)
    try:
        assert plain.run("add", "From Dotenv", cwd=tmp_path).code == 0
        assert plain.run("add", "From Env", cwd=tmp_path,
                         extra_env={"CONTACTS_USER": "env-user"}).code == 0
        assert plain.run("add", "From Flag", "-u", "flag-user", cwd=tmp_path,
                         extra_env={"CONTACTS_USER": "env-user"}).code == 0
    finally:
        if saved is not None:
            os.environ["CONTACTS_USER"] = saved
    names = {u: [c["name"] for c in json.loads(plain.run("ls", "--json", "-u", u).stdout)]
             for u in ("dotenv-user", "env-user", "flag-user")}
    assert names == {"dotenv-user": ["From Dotenv"], "env-user": ["From Env"],
                     "flag-user": ["From Flag"]}


def test_json_output_is_plain_and_help_lists_exit_codes(cli_env: Env) -> None:
    result = cli_env.run("ls", "--json", user="nobody-yet")
    assert result.code == 0 and json.loads(result.stdout) == [] and "\x1b" not in result.stdout
    helped = cli_env.run("--help", mode=None)
    assert "3 not found" in helped.stdout and "5 database" in helped.stdout


def test_shell_completion(cli_env: Env) -> None:
    result = cli_env.run(mode=None, extra_env={
        "_CONTACTS_COMPLETE": "complete_bash", "COMP_WORDS": "contacts im", "COMP_CWORD": "1"})
    assert result.stdout.split() == ["import"]
    sub = cli_env.run(mode=None, extra_env={
        "_CONTACTS_COMPLETE": "complete_bash", "COMP_WORDS": "contacts db st",
        "COMP_CWORD": "2"})
    assert sorted(sub.stdout.split()) == ["start", "status", "stop"]


@pytest.mark.parametrize("mode", MODES)
def test_operations_through_clirunner(cli_env: Env, server: Server, seeded: dict[str, str],
                                      mode: str) -> None:
    stats = cli_env.cli("stats", "--json", mode=mode, server=server.url)
    assert stats.code == 0, stats.stderr
    figures = stats.json()
    assert isinstance(figures, dict) and figures["users"] >= 1
    plain = cli_env.cli("stats", mode=mode, server=server.url)
    assert plain.code == 0 and "users:" in plain.stdout
    status = cli_env.cli("db", "status", "--json")
    assert status.code == 0 and status.json()["journal"]["events"] >= 5  # type: ignore[index]
    journal = cli_env.cli("db", "journal", "seed", "--limit", "2", "--json")
    assert [e["sequence_nr"] for e in journal.json()] == [1, 2]  # type: ignore[union-attr]
    assert cli_env.cli("db", "journal", "bad user!").code == 2


def test_a_discovered_server_that_does_not_answer_falls_back_in_process(
    cli_env: Env, seeded: dict[str, str], tmp_path: Path
) -> None:
    other = Env({**cli_env.vars, "CONTACTS_DATA_DIR": str(tmp_path)}, tmp_path, cli_env.schema,
                cli_env.database_url)
    # A live pid (this test's) that serves nothing: e.g. a server whose pid was reused.
    (tmp_path / "server.json").write_text(json.dumps({
        "url": f"http://127.0.0.1:{free_port()}", "pid": os.getpid(),
        "database": f"{cli_env.database_url}#{cli_env.schema}"}))
    result = other.run("ls", "--json", mode=None, user="seed")
    assert result.code == 0, result.stderr
    assert "does not answer; running in-process" in result.stderr
    assert len(json.loads(result.stdout)) == 3
    explicit = other.run("ls", mode="client", server=f"http://127.0.0.1:{free_port()}",
                         user="seed")
    assert explicit.code == 5  # an explicit --server is never second-guessed


def test_client_mode_imports_no_server_side_module(cli_env: Env, server: Server) -> None:
    probe = (
        "import sys\n"
        "from contacts_cli.cli.app import main\n"
        f"sys.argv = ['contacts', '--server', {server.url!r}, 'add', 'Lazy Lu', '-u', 'lazy']\n"
        "try:\n    main()\nexcept SystemExit as stop:\n    assert not stop.code, stop.code\n"
        "heavy = ('actors', 'persistence', 'psycopg', 'starlette', 'uvicorn', 'vobject', "
        "'rich', 'asyncio', 'phonenumbers', 'email_validator', 'contacts_cli.domain')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env={**os.environ, **cli_env.vars}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
