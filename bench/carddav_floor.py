"""vdirsyncer's floor: how long a sync takes when the server costs (almost) nothing.

:class:`RecordReplay` is a stdlib HTTP/1.1 server on 127.0.0.1 with two modes. Recording, it
relays each request to the real server and keeps the answer; replaying, it answers each
request with the bytes recorded for the same request, doing no other work. A sync recorded
and then replayed from the same client state (the bench copies vdirsyncer's folder and status
before the sync and puts them back) sends the same requests again, so the replayed sync's
wall time is vdirsyncer's own: start-up, parsing, its status database and folder, and the
loopback HTTP exchange, with the server's work taken out.

Requests are matched by method, path and body, the body's lines sorted (vdirsyncer writes a
multiget's hrefs from a set, in an order that changes from run to run); a request recorded
more than once is answered in recorded order (the last answer again after that). A request
that was never recorded is answered 502 and counted (:attr:`RecordReplay.misses`): a floor
measured with misses is no floor.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

import httpx

Key = tuple[str, str, bytes]
Recorded = tuple[int, list[tuple[str, str]], bytes]
_DROPPED = frozenset(("connection", "keep-alive", "transfer-encoding", "content-length",
                      "date", "server", "content-encoding"))


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet about clients that hang up (vdirsyncer closes its connections as it exits)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def _key(method: str, path: str, body: bytes) -> Key:
    return method, path, b"\n".join(sorted(line.strip() for line in body.splitlines()))


class RecordReplay:
    """Relay-and-record, then replay (see the module docstring); ``with`` starts and stops it."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode: Literal["record", "replay"] = "record"
        self.recorded: dict[Key, list[Recorded]] = defaultdict(list)
        self.pending: dict[Key, deque[Recorded]] = {}
        self.misses: list[str] = []
        self.requests = 0
        self.upstream_seconds = 0.0
        """The time the upstream took to answer the recorded requests, summed."""
        self._lock = threading.Lock()
        self._client = httpx.Client(base_url=upstream, timeout=600)
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def record(self) -> None:
        """Relay and keep what the upstream answers (forgetting any earlier recording)."""
        self.mode = "record"
        self.recorded.clear()
        self.upstream_seconds = 0.0

    def replay(self) -> None:
        """Answer from the recording, each recorded answer once per request it answered."""
        self.mode = "replay"
        self.pending = {key: deque(answers) for key, answers in self.recorded.items()}
        self.misses = []
        self.requests = 0

    def __enter__(self) -> RecordReplay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Recorded:
        key = _key(method, path, body)
        if self.mode == "record":
            sent = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
            started = time.perf_counter()
            got = self._client.request(method, path, headers=sent, content=body)
            took = time.perf_counter() - started
            kept = [(k, v) for k, v in got.headers.multi_items() if k.lower() not in _DROPPED]
            answer: Recorded = (got.status_code, kept, got.content)
            with self._lock:
                self.recorded[key].append(answer)
                self.upstream_seconds += took
            return answer
        with self._lock:
            self.requests += 1
            queue = self.pending.get(key)
            if queue:
                return queue.popleft() if len(queue) > 1 else queue[0]
            self.misses.append(f"{method} {path}")
        return 502, [("Content-Type", "text/plain")], b"not recorded"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, content = owner._answer(self.command, self.path,
                                                         dict(self.headers.items()), body)
                self.send_response_only(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)

            do_GET = do_HEAD = do_PUT = do_DELETE = do_OPTIONS = _serve
            do_PROPFIND = do_REPORT = do_PROPPATCH = do_POST = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
