"""Where the CLI's settings come from, and how it finds a running ``contacts serve``.

Precedence is flag > environment > ``.env``: :func:`load_dotenv_file` fills only variables
the environment does not set, and Typer reads flags before their ``envvar``.

A running server announces itself with ``server.json`` in the data directory (its URL, pid,
which database it serves and a secret nonce). The CLI uses it only when the pid is alive and
the database matches its own, so a stale file or a server on another database is never
picked up; and it sends its token there only once the server proved it knows the nonce
(:func:`check_announced`, :mod:`contacts_cli.server_proof`), so a listener squatting on the
announced port gets nothing.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from contacts_cli.server_proof import new_challenge, proves

SERVER_FILE = "server.json"


def load_dotenv_file(path: str | os.PathLike[str] | None = None) -> Path | None:
    """Load ``.env`` (from ``path``, ``CONTACTS_ENV_FILE`` or the working directory) without
    overriding variables already set; return the file used, if any."""
    candidate = Path(path or os.environ.get("CONTACTS_ENV_FILE") or ".env")
    if not candidate.is_file():
        return None
    from dotenv import load_dotenv

    load_dotenv(candidate, override=False)
    return candidate


def database_identity(database_url: str | None, data_dir: Path, schema: str | None = None) -> str:
    """A stable name for the database and schema a process uses (no password), so the CLI
    only talks to a server that stores where it would store itself."""
    schema = schema or os.environ.get("CONTACTS_DB_SCHEMA", "").strip() or "contacts"
    if not database_url:
        return f"embedded:{data_dir.expanduser().resolve()}#{schema}"
    return f"{_without_password(database_url)}#{schema}"


def _without_password(url: str) -> str:
    """``url`` with no password, not even an empty one (``postgres:@host`` is ``postgres@host``),
    the host in lower case and the rest as written."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    user, at, host = parts.netloc.rpartition("@")
    user = user.partition(":")[0]
    return parts._replace(netloc=f"{user}{at}{host.lower()}").geturl()


def same_database(announced: str, ours: str) -> bool:
    """Whether a server's announced database is ours, however its URL spells the user part
    (a server file is written by another process, perhaps another release)."""
    url, hash_, schema = announced.rpartition("#")
    if hash_ and not url.startswith("embedded:"):
        announced = f"{_without_password(url)}#{schema}"
    return announced == ours


@dataclass(frozen=True)
class ServerInfo:
    """What ``contacts serve`` writes into the data directory while it runs."""

    url: str
    pid: int
    database: str
    nonce: str = ""
    """The secret whose knowledge the server proves before the CLI trusts it with a token."""

    def to_json(self) -> dict[str, Any]:
        """The file's content, secret included."""
        return {**self.describe(), "nonce": self.nonce}

    def describe(self) -> dict[str, Any]:
        """What may be shown to the user (``db status``): everything but the nonce."""
        return {"url": self.url, "pid": self.pid, "database": self.database}


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (signal 0 checks without sending anything)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_server_file(data_dir: Path, info: ServerInfo) -> Path:
    """Atomically publish ``info`` so a concurrent reader never sees half a file.

    The temporary file has an unpredictable name and is created exclusively, mode 0600,
    without following a link, so nothing planted in the data directory makes this write
    another file; the rename replaces a link at ``server.json`` instead of following it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / SERVER_FILE
    tmp = data_dir / f".{SERVER_FILE}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(info.to_json()))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return target


def remove_server_file(data_dir: Path, pid: int) -> None:
    """Remove the server file if it is still ours (a newer server may have replaced it)."""
    target = data_dir / SERVER_FILE
    info = read_server_file(data_dir, check_alive=False)
    if info is not None and info.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()


def read_server_file(data_dir: Path, *, check_alive: bool = True) -> ServerInfo | None:
    """The server announced in ``data_dir``, or None if absent, unreadable, dead or not to
    be trusted.

    The CLI sends its token to the URL it finds here, so the file must be a regular file
    (not a link) owned by this user and writable by nobody else, and the URL must be on
    loopback: a file planted by another user in a shared data directory is ignored."""
    try:
        fd = os.open(data_dir / SERVER_FILE, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        with os.fdopen(fd, encoding="utf-8") as handle:
            status = os.fstat(handle.fileno())
            if (not stat.S_ISREG(status.st_mode) or status.st_uid != os.getuid()
                    or status.st_mode & 0o022):
                return None
            raw = json.loads(handle.read(64 * 1024))
        info = ServerInfo(url=str(raw["url"]), pid=int(raw["pid"]), database=str(raw["database"]),
                          nonce=str(raw.get("nonce") or ""))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _on_loopback(info.url):
        return None
    if check_alive and not pid_alive(info.pid):
        return None
    return info


def _on_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def discover_server(data_dir: Path, database: str) -> ServerInfo | None:
    """The announcement of a live ``contacts serve`` on this data directory and database, if
    any (not yet proven: see :func:`check_announced`)."""
    info = read_server_file(data_dir)
    if info is None or not same_database(info.database, database):
        return None
    return info


PROOF_TIMEOUT = 5.0
"""Seconds a discovered server gets to answer its proof (a squatter that accepts and then
says nothing, or dribbles, must not hold the command for the whole ``--timeout``)."""

MAX_PROOF_ANSWER = 4096
"""Bytes of a ``/healthz`` answer read at most (a real one is under 100)."""


def check_announced(info: ServerInfo, *, timeout: float = PROOF_TIMEOUT) -> str | None:
    """None when the server at ``info.url`` proved it wrote ``info`` (it answered a fresh
    challenge with the HMAC of the file's nonce), else why not, for the user's note.

    The request carries no credentials: whoever answers learns only a random challenge."""
    import time

    import httpx

    challenge = new_challenge()
    deadline = time.monotonic() + timeout
    raw = b""
    try:
        with httpx.stream(
            "GET", f"{info.url.rstrip('/')}/healthz", params={"challenge": challenge},
            timeout=httpx.Timeout(timeout), verify=not info.url.startswith("http://"),
        ) as response:
            for chunk in response.iter_bytes():
                raw += chunk
                if len(raw) > MAX_PROOF_ANSWER or time.monotonic() > deadline:
                    break
            status = response.status_code
    except (httpx.HTTPError, httpx.InvalidURL):
        return "does not answer"
    try:
        body = json.loads(raw) if status == 200 else None
    except ValueError:
        body = None
    proof = body.get("proof") if isinstance(body, dict) else None
    if proves(info.nonce, challenge, proof):
        return None
    return "did not prove it wrote server.json (its token was not sent)"
