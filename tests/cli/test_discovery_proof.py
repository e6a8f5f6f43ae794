"""A discovered server gets the CLI's token only once it proved it wrote ``server.json``
(issue 10): ``/healthz`` answers a fresh challenge with the HMAC of the file's nonce, which a
listener squatting on the announced port cannot compute."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from contacts_cli import server_proof
from contacts_cli.cli.config import ServerInfo, check_announced, write_server_file
from contacts_cli.http.app import create_app
from contacts_cli.service.settings import Settings
from tests.cli.conftest import Env, Server

TOKEN = "victims-token-never-to-be-sent"
Answer = Callable[[str], dict[str, object]]


class Squatter:
    """A listener on 127.0.0.1 that answers ``/healthz`` as ``answer`` says and every other
    request with 200 ``[]``, recording the path and headers of everything it receives."""

    def __init__(self, answer: Answer) -> None:
        received: list[tuple[str, dict[str, str]]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                received.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                url = urlsplit(self.path)
                challenge = parse_qs(url.query).get("challenge", [""])[0]
                body = json.dumps(answer(challenge) if url.path == "/healthz" else []).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = _reply

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


SQUATTERS: dict[str, Answer] = {
    "plain health": lambda challenge: {"status": "ok"},
    "echoes the challenge": lambda challenge: {"status": "ok", "proof": challenge},
    "proof with another nonce": lambda challenge: {
        "status": "ok", "proof": server_proof.answer("a-guessed-nonce", challenge)},
}


@pytest.fixture(params=list(SQUATTERS), ids=list(SQUATTERS))
def squatter(request: pytest.FixtureRequest) -> Iterator[Squatter]:
    listening = Squatter(SQUATTERS[request.param])
    yield listening
    listening.close()


def test_a_squatter_on_the_announced_port_receives_no_token(
    cli_env: Env, squatter: Squatter, tmp_path: Path
) -> None:
    other = Env({**cli_env.vars, "CONTACTS_DATA_DIR": str(tmp_path)}, tmp_path, cli_env.schema,
                cli_env.database_url)
    write_server_file(tmp_path, ServerInfo(
        squatter.url, os.getpid(), f"{cli_env.database_url}#{cli_env.schema}",
        nonce=server_proof.new_nonce()))
    added = other.run("add", "Never Sent", "--json", mode=None, user="proof",
                      extra_env={"CONTACTS_API_TOKEN": TOKEN})
    assert added.code == 0, added.stderr
    assert "did not prove it wrote server.json" in added.stderr
    assert "running in-process" in added.stderr
    assert json.loads(added.stdout)["name"] == "Never Sent"  # written in-process instead
    assert squatter.received, "the CLI never asked for the proof"
    assert [urlsplit(path).path for path, _ in squatter.received] == ["/healthz"]
    assert all("authorization" not in headers for _, headers in squatter.received)
    assert all(TOKEN not in path for path, _ in squatter.received)


def test_the_real_server_proves_it_and_gets_the_command(cli_env: Env, server: Server) -> None:
    announced = json.loads((cli_env.data_dir / "server.json").read_text())
    assert len(announced["nonce"]) >= 32
    info = ServerInfo(announced["url"], announced["pid"], announced["database"],
                      announced["nonce"])
    assert check_announced(info) is None
    forged = ServerInfo(info.url, info.pid, info.database, server_proof.new_nonce())
    assert check_announced(forged) is not None  # the proof is of this file's nonce
    added = cli_env.run("add", "Through The Server", mode=None, user="proof")
    assert added.code == 0 and "note:" not in added.stderr, added.stderr
    status = cli_env.run("db", "status", "--json", mode=None)
    assert "nonce" not in status.stdout  # the secret is never printed


async def test_healthz_answers_the_challenge_only_with_a_nonce(tmp_path: Path) -> None:
    async def never() -> object:
        raise AssertionError("healthz needs no backend")

    settings = Settings(data_dir=tmp_path)
    for nonce in ("n0nce", None):
        app = create_app(settings, open_backend=never,  # type: ignore[arg-type]
                         discovery_nonce=nonce)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test") as client:
            plain = await client.get("/healthz")
            assert plain.json() == {"status": "ok"}
            proved = (await client.get("/healthz", params={"challenge": "c-1"})).json()
            expected = server_proof.answer("n0nce", "c-1") if nonce else None
            assert proved.get("proof") == expected
            for bad in ("", "x" * 129, "with space", "new\nline"):
                refused = await client.get("/healthz", params={"challenge": bad})
                assert refused.status_code == 422, bad
