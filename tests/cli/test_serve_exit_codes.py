"""``contacts serve`` says why it cannot serve, with the documented exit code (issue 10):
a taken port is a usage error (2) and nothing is announced in the data directory; an
unreachable database is 5 (uvicorn's own exit 3 came through before)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def serve(tmp_path: Path, database_url: str, port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CONTACTS_URL", "CONTACTS_PORT")}
    env.update(DATABASE_URL=database_url, CONTACTS_DATA_DIR=str(tmp_path), NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "contacts_cli.cli.app", "serve", "--port", str(port)],
        capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
    )


def test_a_taken_port_is_a_usage_error_and_announces_nothing(
    tmp_path: Path, database_url: str
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        done = serve(tmp_path, database_url, port)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert not (tmp_path / "server.json").exists()


def test_an_unreachable_database_exits_5(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    done = serve(tmp_path, f"postgresql://postgres@127.0.0.1:{dead}/test", port)
    assert done.returncode == 5, done.stderr[-2000:]
    assert "cannot connect to PostgreSQL" in done.stderr
