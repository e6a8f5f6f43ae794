"""``contacts user add|passwd|rm`` end to end: in-process, and in client mode against a real
``contacts serve`` (whose accounts then answer HTTP Basic), with exit codes and --json."""

from __future__ import annotations

import httpx
import pytest

from tests.accounts.conftest import basic
from tests.cli.conftest import Env, Server, start_server, stop_server

pytestmark = pytest.mark.slow


def status(server: Server, name: str, password: str) -> int:
    response = httpx.get(f"{server.url}/api/{name}/contacts", headers=basic(name, password),
                         timeout=30)
    return response.status_code


def test_in_process_commands_with_exit_codes_and_json(cli_env: Env) -> None:
    added = cli_env.cli("user", "add", "ivy", "--json", stdin="ivy's password\n")
    assert added.code == 0, added.stderr
    assert added.json()["name"] == "ivy"  # type: ignore[index]
    plain = cli_env.cli("user", "add", "ivan", "--password-stdin", stdin="ivan's password\r\n")
    assert (plain.code, plain.stdout) == (0, "created account ivan\n")
    again = cli_env.cli("user", "add", "ivy", stdin="ivy's password\n")
    assert again.code == 4 and "already exists" in again.stderr
    short = cli_env.cli("user", "add", "jo", stdin="short\n")
    assert short.code == 2 and "password: must be at least 8 characters" in short.stderr
    empty = cli_env.cli("user", "add", "jo", stdin="")
    assert empty.code == 2 and "no password on stdin" in empty.stderr
    bad = cli_env.cli("user", "add", "no/slash", stdin="whatever-long\n")
    assert bad.code == 2 and "user_id" in bad.stderr
    missing = cli_env.cli("user", "passwd", "nobody", stdin="nobody's password\n")
    assert missing.code == 3 and "no account 'nobody'" in missing.stderr
    changed = cli_env.cli("user", "passwd", "ivy", stdin="ivy's new password\n")
    assert (changed.code, changed.stdout) == (0, "changed the password of account ivy\n")
    unconfirmed = cli_env.cli("user", "rm", "ivy")
    assert unconfirmed.code == 2 and "--yes" in unconfirmed.stderr
    removed = cli_env.cli("user", "rm", "ivy", "--yes", "--json")
    assert removed.code == 0 and removed.json()["name"] == "ivy"  # type: ignore[index]
    gone = cli_env.cli("user", "rm", "ivy", "--yes")
    assert gone.code == 3


def test_client_mode_goes_through_the_server_and_takes_effect_at_once(cli_env: Env) -> None:
    server = start_server(cli_env)
    try:
        run = cli_env.run
        added = run("user", "add", "kim", mode="client", server=server.url,
                    stdin="kim's password\n")
        assert added.code == 0, added.stderr
        assert status(server, "kim", "kim's password") == 200
        assert status(server, "kim", "wrong password") == 401
        again = run("user", "add", "kim", mode="client", server=server.url,
                    stdin="kim's password\n")
        assert again.code == 4 and "already exists" in again.stderr
        changed = run("user", "passwd", "kim", mode=None, stdin="kim's second password\n")
        assert changed.code == 0, changed.stderr  # found through server.json
        assert status(server, "kim", "kim's password") == 401
        assert status(server, "kim", "kim's second password") == 200
        missing = run("user", "rm", "nobody", "--yes", mode="client", server=server.url)
        assert missing.code == 3
    finally:
        stop_server(server)
    server = start_server(cli_env)  # the account is durable: a new process still knows it
    try:
        assert status(server, "kim", "kim's second password") == 200
        removed = cli_env.run("user", "rm", "kim", "--yes", mode="client", server=server.url)
        assert removed.code == 0, removed.stderr
        assert status(server, "kim", "kim's second password") == 401
    finally:
        stop_server(server)
