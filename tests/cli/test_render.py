"""How the CLI prints and which exit code it returns, against a dict-backed fake backend.

Only the presentation is under test here; storing contacts is tested end to end against
PostgreSQL in test_commands.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from contacts_cli.cli import runner as cli_runner
from contacts_cli.cli.app import app
from contacts_cli.cli.options import CliOptions
from contacts_cli.cli.render import Output, detail_rows, flatten, format_value, history_rows
from tests.cli.fakes import FakeBackend

runner = CliRunner()


@pytest.fixture
def fake() -> Iterator[FakeBackend]:
    backend = FakeBackend()

    async def factory(options: CliOptions) -> FakeBackend:
        return backend

    cli_runner.backend_factory_override = factory  # type: ignore[assignment]
    try:
        yield backend
    finally:
        cli_runner.backend_factory_override = None


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--local", *args], env={"CONTACTS_USER": "alice"})
    return result.exit_code, result.stdout, result.stderr


def test_add_prints_the_contact_plain_and_as_json(fake: FakeBackend) -> None:
    code, out, _ = invoke("add", "Ada Lovelace", "-e", "ada@example.org", "-l", "math")
    assert code == 0
    assert "id:" in out and "c1" in out and "Ada Lovelace" in out and "ada@example.org" in out
    assert "\x1b[" not in out  # no colour when stdout is not a terminal
    code, out, _ = invoke("add", "Grace Hopper", "--json")
    assert code == 0
    assert json.loads(out)["name"] == "Grace Hopper"


def test_list_is_tab_separated_off_a_terminal_and_an_array_in_json(fake: FakeBackend) -> None:
    for name in ("Bea", "Al"):
        invoke("add", name, "-e", f"{name.lower()}@example.org")
    code, out, _ = invoke("ls")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split("\t")[:2] == ["id", "name"]
    assert [line.split("\t")[1] for line in lines[1:]] == ["Al", "Bea"]
    code, out, _ = invoke("list", "--json")
    assert [c["name"] for c in json.loads(out)] == ["Al", "Bea"]


def test_list_pages_and_tells_the_cursor_on_stderr(fake: FakeBackend) -> None:
    for name in ("A", "B", "C"):
        invoke("add", name)
    code, out, err = invoke("ls", "--limit", "2", "--json")
    assert code == 0 and len(json.loads(out)) == 2
    assert "--cursor 2" in err
    code, out, err = invoke("ls", "--limit", "2", "--all", "--json")
    assert [c["name"] for c in json.loads(out)] == ["A", "B", "C"] and err == ""


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("show", "nope"), 3, "not found"),
        (("add", "--company", "Acme"), 2, "name: is required"),
        (("show", "c1", "--as-of", "yesterday-ish"), 2, "cannot read time"),
        (("rm", "c1"), 2, "pass --yes"),
        (("edit", "c1"), 2, "nothing to change"),
        (("edit", "c1", "-e", "a@b.org", "--clear", "emails"), 2, "emails is both set and"),
        (("add", "Ada", "--name", "Grace"), 2, "give the name once"),
    ],
)
def test_errors_go_to_stderr_with_their_exit_code(
    fake: FakeBackend, args: tuple[str, ...], code: int, message: str
) -> None:
    invoke("add", "Ada")
    exit_code, out, err = invoke(*args)
    assert exit_code == code
    assert message in err and out == ""


def test_the_field_options_reach_the_backend_as_contact_data(fake: FakeBackend) -> None:
    code, _, _ = invoke("add", "--name", "Ada", "-e", "a@x.org", "-e", "b@x.org",
                          "-p", "+44 20 7946 0000", "--company", "Acme", "-l", "x", "--json")
    assert code == 0
    assert fake.events["c1"][0]["changes"] == {
        "name": "Ada", "emails": ["a@x.org", "b@x.org"], "phones": ["+44 20 7946 0000"],
        "company": "Acme", "labels": ["x"]}
    code, _, _ = invoke("edit", "c1", "--title", "Countess", "--clear", "phones", "--json")
    assert code == 0
    assert fake.events["c1"][-1]["changes"] == {"title": "Countess", "phones": None}


def test_stale_expected_version_exits_4(fake: FakeBackend) -> None:
    invoke("add", "Ada")
    code, _, err = invoke("edit", "c1", "--company", "X", "--expect-version", "7")
    assert code == 4 and "version 1" in err
    code, out, _ = invoke("edit", "c1", "--company", "X", "--expect-version", "1", "--json")
    assert code == 0 and json.loads(out)["version"] == 2


def test_unreachable_database_exits_5(fake: FakeBackend) -> None:
    fake.down = True
    code, _, err = invoke("stats")
    assert code == 5 and "cannot reach PostgreSQL" in err


def test_history_and_stats_render(fake: FakeBackend) -> None:
    invoke("add", "Ada", "-e", "ada@example.org")
    code, out, _ = invoke("history", "c1")
    assert code == 0
    header, row = out.splitlines()
    assert header.split("\t") == ["#", "time", "event", "details"]
    assert row.split("\t")[:3] == ["1", "2026-11-23T10:00:00+00:00", "ContactCreated"]
    code, out, _ = invoke("stats")
    assert code == 0 and "actors.live:" in out and out.split("actors.live:")[1].split()[0] == "2"
    code, out, _ = invoke("stats", "--json")
    assert json.loads(out)["journal"]["events"] == 10


def test_rm_with_yes_reports_what_it_removed(fake: FakeBackend) -> None:
    invoke("add", "Ada")
    code, out, _ = invoke("rm", "c1", "--yes")
    assert code == 0 and out.strip() == "removed c1 Ada"
    assert fake.closed


def test_formatting_helpers() -> None:
    assert format_value(["a", "b"]) == "a, b"
    assert format_value(None) == ""
    assert format_value({"x": 1, "y": None}) == "x=1"
    assert detail_rows({"name": "A", "id": "1", "emails": [], "company": None}) == [
        ("id", "1"), ("name", "A")]
    assert flatten({"a": {"b": 1.23456789}}) == [("a.b", "1.23457")]
    rows = history_rows([{"at": "t", "type": "ContactUpdated", "version": 2,
                          "changes": {"company": "X"}}])
    assert rows == [("2", "t", "ContactUpdated", "company=X")]


def test_rich_tables_only_on_a_terminal_and_no_colour_with_no_color(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("NO_COLOR", "1")
    stream = Tty()
    Output(stdout=stream).contacts([{"id": "c1", "name": "Ada", "emails": ["a@x.org"]}])
    text = stream.getvalue()
    assert "┃" in text or "│" in text  # a Rich table
    assert "\x1b[3" not in text  # NO_COLOR: no colour codes
