"""Fixtures for the CLI's end-to-end tests: a real PostgreSQL schema per test module, a real
``contacts serve`` subprocess, and helpers that run commands through Typer's CliRunner or as
a real subprocess, in-process (``--local``) or in client mode (``--server``)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from contacts_cli.cli.app import app
from tests.conftest import drop_schemas, unique_schema

CONTACTS = str(Path(sys.executable).with_name("contacts"))


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Env:
    """One isolated installation: its schema, data directory and environment variables."""

    vars: dict[str, str]
    data_dir: Path
    schema: str
    database_url: str

    def cli(self, *args: str, mode: str = "local", server: str | None = None,
            stdin: str | None = None, user: str | None = None) -> Result:
        """Run through Typer's CliRunner in this process."""
        env = dict(self.vars)
        if user:
            env["CONTACTS_USER"] = user
        prefix = ["--local"] if mode == "local" else ["--server", server or ""]
        result = CliRunner().invoke(app, [*prefix, *args], env=env, input=stdin)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Result(result.exit_code, result.stdout, result.stderr)

    def run(self, *args: str, mode: str | None = "local", server: str | None = None,
            stdin: str | None = None, user: str | None = None, cwd: Path | None = None,
            extra_env: dict[str, str] | None = None, timeout: float = 120) -> Result:
        """Run the installed ``contacts`` console script as a real subprocess."""
        env = {**os.environ, **self.vars, **(extra_env or {})}
        if user:
            env["CONTACTS_USER"] = user
        prefix: list[str] = []
        if mode == "local":
            prefix = ["--local"]
        elif mode == "client":
            prefix = ["--server", server or ""]
        proc = subprocess.run([CONTACTS, *prefix, *args], env=env, input=stdin,
                              capture_output=True, text=True, timeout=timeout, cwd=cwd)
        return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def cli_env(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    data_dir = tmp_path_factory.mktemp("contacts-data")
    schema = unique_schema("cli")
    env = Env(
        vars={
            "DATABASE_URL": database_url,
            "CONTACTS_DB_SCHEMA": schema,
            "CONTACTS_DATA_DIR": str(data_dir),
            "CONTACTS_USER": "alice",
            "NO_COLOR": "1",
            "CONTACTS_URL": "",
        },
        data_dir=data_dir,
        schema=schema,
        database_url=database_url,
    )
    yield env
    asyncio.run(drop_schemas(database_url, [schema]))


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]


def start_server(env: Env, port: int | None = None, *, args: tuple[str, ...] = ()) -> Server:
    """``contacts serve`` (with ``args``) on ``port``, once it announced its URL."""
    port = port or free_port()
    process = subprocess.Popen(
        [CONTACTS, "serve", "--port", str(port), "--log-level", "warning", *args],
        env={**os.environ, **env.vars}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    server_file = env.data_dir / "server.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"contacts serve exited: {process.stderr.read()}")  # type: ignore[union-attr]
        announced = json.loads(server_file.read_text()) if server_file.exists() else {}
        if announced.get("pid") == process.pid:
            return Server(announced["url"], process)
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("contacts serve did not announce itself within 60 s")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="module")
def server(cli_env: Env) -> Iterator[Server]:
    running = start_server(cli_env)
    yield running
    stop_server(running)
