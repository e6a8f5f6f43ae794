"""Behaviour that only shows on a terminal, checked with a real pseudo-terminal: tables and
colours on stdout (NO_COLOR honoured), the import progress bar on stderr only, and ``rm``
asking for confirmation."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time
from pathlib import Path

from tests.cli.conftest import CONTACTS, Env

COLOUR = re.compile(r"\x1b\[(?:\d+;)*3\dm")


def run_on_pty(env: Env, args: list[str], *, tty: str, answer: bytes | None = None,
               extra_env: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    """Run ``contacts`` with ``tty`` ("stdout", "stderr" or "stdin") on a pseudo-terminal;
    return (exit code, what the terminal received, the other captured stream)."""
    master, slave = pty.openpty()
    streams: dict[str, object] = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE,
                                  "stderr": subprocess.PIPE}
    streams[tty] = slave
    if tty == "stdin":
        streams["stderr"] = slave
    environ = {**os.environ, **env.vars, "COLUMNS": "160", "TERM": "xterm-256color",
               **(extra_env or {})}
    if "NO_COLOR" not in (extra_env or {}):
        environ.pop("NO_COLOR", None)
    proc = subprocess.Popen([CONTACTS, *args], env=environ, **streams)  # type: ignore[arg-type]
    os.close(slave)
    if answer is not None:
        time.sleep(0.5)
        os.write(master, answer)
    received = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            received += chunk
        elif proc.poll() is not None:
            break
    other_stream = proc.stdout if tty != "stdout" else proc.stderr
    other = other_stream.read().decode() if other_stream is not None else ""  # type: ignore[attr-defined]
    proc.wait(timeout=60)
    os.close(master)
    return proc.returncode, received, other


def test_tables_and_colours_only_on_a_terminal(cli_env: Env) -> None:
    cli_env.run("add", "Terminal Tess", "-e", "tess@example.org", user="tty")
    code, screen, _ = run_on_pty(cli_env, ["--local", "ls", "-u", "tty"], tty="stdout")
    text = screen.decode()
    assert code == 0 and "Terminal Tess" in text
    assert "┃" in text or "│" in text  # a Rich table, not tab-separated text
    assert COLOUR.search(text)  # the header is coloured
    code, screen, _ = run_on_pty(cli_env, ["--local", "ls", "-u", "tty"], tty="stdout",
                                 extra_env={"NO_COLOR": "1"})
    text = screen.decode()
    assert code == 0 and "Terminal Tess" in text and not COLOUR.search(text)
    code, screen, _ = run_on_pty(cli_env, ["--local", "ls", "-u", "tty", "--json"],
                                 tty="stdout")
    assert code == 0 and screen.decode().lstrip().startswith("[") and "┃" not in screen.decode()


def test_progress_bar_goes_to_stderr_only(cli_env: Env, tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    source.write_text("name,emails\n" + "".join(
        f"Progress {i},p{i}@example.org\n" for i in range(3000)))
    code, stderr_screen, stdout = run_on_pty(
        cli_env, ["--local", "import", str(source), "-u", "progress"], tty="stderr")
    assert code == 0, stdout
    assert stdout.startswith("imported 3000, skipped as duplicates 0, rejected 0")
    assert "rows/s" in stderr_screen.decode() and "importing" in stderr_screen.decode()
    assert "rows/s" not in stdout.splitlines()[0].split(" in ")[0]


def test_rm_asks_on_a_terminal(cli_env: Env) -> None:
    added = cli_env.run("add", "Ask Me", "--json", user="asker")
    cid = added.json()["id"]  # type: ignore[index]
    code, screen, _ = run_on_pty(cli_env, ["--local", "rm", cid, "-u", "asker"], tty="stdin",
                                 answer=b"n\n")
    assert code == 1 and b"Remove" in screen
    assert cli_env.run("show", cid, user="asker").code == 0
    code, screen, _ = run_on_pty(cli_env, ["--local", "rm", cid, "-u", "asker"], tty="stdin",
                                 answer=b"y\n")
    assert code == 0
    assert cli_env.run("show", cid, user="asker").code == 3
