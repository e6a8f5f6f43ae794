"""The embedded PostgreSQL from the CLI: ``db start`` keeps it up, in-process commands reuse it
without stopping it, ``db stop`` stops it, and without it a command starts its own."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import Env


@pytest.fixture
def embedded_env() -> Iterator[Env]:
    # The embedded server may run as an unprivileged system user: its directory must be
    # reachable by it, which pytest's private tmp_path is not.
    root = Path(tempfile.mkdtemp(prefix="contacts-embedded-", dir="/tmp"))
    root.chmod(0o755)
    env = Env({"CONTACTS_DATA_DIR": str(root), "CONTACTS_USER": "emb", "NO_COLOR": "1",
               "CONTACTS_URL": "", "DATABASE_URL": "", "CONTACTS_DB_SCHEMA": "contacts"},
              root, "contacts", "")
    saved = os.environ.pop("DATABASE_URL", None)
    try:
        yield env
    finally:
        env.run("db", "stop", mode=None)
        if saved is not None:
            os.environ["DATABASE_URL"] = saved
        shutil.rmtree(root, ignore_errors=True)


def running(env: Env) -> bool:
    status = env.run("db", "status", "--json", mode=None)
    assert status.code == 0, status.stderr
    return bool(json.loads(status.stdout)["embedded"]["running"])


def test_db_start_keeps_the_embedded_server_for_every_command(embedded_env: Env) -> None:
    env = embedded_env
    started = env.run("db", "start", mode=None, timeout=120)
    assert started.code == 0, started.stderr
    assert "keeps running" in started.stdout
    assert running(env)
    assert env.run("add", "Embedded Em", "-e", "em@example.org", timeout=120).code == 0
    assert running(env)  # the command reused the server and left it up
    listed = json.loads(env.run("ls", "--json").stdout)
    assert [c["name"] for c in listed] == ["Embedded Em"]
    stopped = env.run("db", "stop", mode=None)
    assert stopped.code == 0 and "stopped" in stopped.stdout
    assert not running(env)
    # Without a running server a command starts one for itself (and stops it afterwards).
    again = env.run("ls", "--json", timeout=120)
    assert again.code == 0 and [c["name"] for c in json.loads(again.stdout)] == ["Embedded Em"]
    assert not running(env)
