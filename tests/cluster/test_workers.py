"""``serve --workers 2``: two worker processes share one port, each an instance; a worker
killed with -9 is replaced, the service keeps answering for every user meanwhile (after the
dead worker's TTL for its own users), and SIGTERM stops everything with exit code 0."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster.conftest import CLUSTER_TTL, SETTLE_WITHIN
from tests.conftest import drop_schemas, unique_schema
from tests.service.conftest import ROOT, free_port

pytestmark = pytest.mark.slow


def children(pid: int) -> set[int]:
    """The pids whose parent is ``pid`` (read from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("PPid:") and int(line.split()[1]) == pid:
                found.add(int(entry.name))
    return found


def two_workers(parent: int, without: int | None = None) -> set[int] | None:
    """The parent's two workers, once it has two (and ``without`` is not one of them)."""
    found = children(parent)
    return found if len(found) == 2 and without not in found else None


def wait_for(predicate: Any, what: str) -> Any:
    deadline = time.monotonic() + SETTLE_WITHIN
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {SETTLE_WITHIN} s: {what}")


def test_two_workers_serve_and_survive_a_kill_9(database_url: str, tmp_path: Path) -> None:
    schema, port = unique_schema("workers"), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTACTS_")}
    env.update(DATABASE_URL=database_url, CONTACTS_DB_SCHEMA=schema, CONTACTS_PORT=str(port),
               CONTACTS_DATA_DIR=str(tmp_path), CONTACTS_CLUSTER_TTL=str(CLUSTER_TTL))
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "workers.log").open("wb")
    parent = subprocess.Popen([sys.executable, "-m", "contacts_cli.http", "--workers", "2",
                               "--log-level", "warning"], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    workers: set[int] = set()
    try:
        workers = wait_for(lambda: two_workers(parent.pid), "two workers")

        def ready() -> bool:
            try:
                return httpx.get(url + "/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, "the service answers")
        users = [f"w-{n}" for n in range(8)]
        ids: dict[str, str] = {}
        pids_seen: set[int] = set()
        with httpx.Client(timeout=30) as client:
            for user in users:
                created = client.post(f"{url}/api/{user}/contacts", json={"name": user})
                assert created.status_code == 201, created.text
                ids[user] = created.json()["id"]
            for _ in range(20):  # new connections spread over both workers
                with httpx.Client(timeout=30) as fresh:
                    pids_seen.add(fresh.get(url + "/api/stats").json()["cluster"]["pid"])
            assert pids_seen <= workers

            victim = min(workers)
            os.kill(victim, signal.SIGKILL)
            workers = wait_for(lambda: two_workers(parent.pid, without=victim),
                               "a replacement worker")

            def all_served() -> bool:
                for user in users:
                    try:
                        got = client.get(f"{url}/api/{user}/contacts/{ids[user]}")
                    except httpx.TransportError:
                        return False
                    if got.status_code == 503:
                        return False
                    assert got.status_code == 200, got.text
                    assert got.json()["name"] == user
                return True

            wait_for(all_served, "every user served again after the kill")
    finally:
        if parent.poll() is None:
            parent.send_signal(signal.SIGTERM)
        try:
            code = parent.wait(timeout=60)
        finally:
            left = {pid for pid in workers if Path(f"/proc/{pid}").exists()}
            for pid in left | children(parent.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            asyncio.run(drop_schemas(database_url, [schema]))
    assert code == 0, (tmp_path / "workers.log").read_text()[-3000:]
    assert not left, "workers outlived their supervisor"
