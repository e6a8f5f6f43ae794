"""The discovery file (``server.json``) is an attack surface (issue 10): the CLI sends its
token to the URL it finds there. Only a regular file of this user's, writable by nobody
else, naming a loopback URL, is trusted; writing it never follows a planted link."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from contacts_cli.cli.config import SERVER_FILE, ServerInfo, read_server_file, write_server_file

INFO = ServerInfo("http://127.0.0.1:8765", os.getpid(), "127.0.0.1:5432/contacts")


def test_written_file_is_private_and_read_back(tmp_path: Path) -> None:
    path = write_server_file(tmp_path, INFO)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_server_file(tmp_path) == INFO
    assert [p.name for p in tmp_path.iterdir()] == [SERVER_FILE]  # no temporary file left


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_a_file_others_may_write_is_ignored(tmp_path: Path, mode: int) -> None:
    path = write_server_file(tmp_path, INFO)
    path.chmod(mode)
    assert read_server_file(tmp_path) is None


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_a_file_of_another_user_is_ignored(tmp_path: Path) -> None:
    path = write_server_file(tmp_path, INFO)
    os.chown(path, 65534, 65534)
    assert read_server_file(tmp_path) is None


def test_a_url_off_loopback_is_ignored(tmp_path: Path) -> None:
    for url in ("http://203.0.113.7:8765", "http://attacker.example:80"):
        write_server_file(tmp_path, ServerInfo(url, os.getpid(), INFO.database))
        assert read_server_file(tmp_path) is None
    for url in ("http://localhost:8765", "http://[::1]:8765", "https://127.0.0.2:1"):
        write_server_file(tmp_path, ServerInfo(url, os.getpid(), INFO.database))
        assert read_server_file(tmp_path) is not None


def test_a_planted_link_is_neither_followed_on_write_nor_trusted_on_read(
    tmp_path: Path,
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / SERVER_FILE).symlink_to(victim)
    assert read_server_file(data_dir) is None  # a link is not trusted
    write_server_file(data_dir, INFO)
    assert victim.read_text() == "precious"
    assert not (data_dir / SERVER_FILE).is_symlink()
    assert json.loads((data_dir / SERVER_FILE).read_text())["url"] == INFO.url
