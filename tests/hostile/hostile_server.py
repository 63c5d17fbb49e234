"""A misbehaving JSON API on 127.0.0.1: errors, throttling, stalls, truncation, loops.

Routes (``GET``):

* ``/ok`` - two records;
* ``/flaky/<n>`` - HTTP 500 for the first ``n`` requests of the test, then ``/ok``;
* ``/throttled/<n>`` - HTTP 429 with ``Retry-After: 0`` ``n`` times, then ``/ok``;
* ``/status/<code>`` - always that status, with a short body;
* ``/stall`` - waits longer than any client timeout used in the tests, then answers;
* ``/truncated`` - promises 1000 bytes, sends a few and closes the connection;
* ``/cut-json`` - a complete response whose JSON stops halfway;
* ``/html`` - an HTML error page with status 200;
* ``/nested`` - JSON nested deeper than Python's recursion limit;
* ``/scalars`` - a list of numbers instead of objects;
* ``/invalid-utf8`` - a body that is not UTF-8;
* ``/loop/a`` and ``/loop/b`` - redirect to each other forever; ``/self`` to itself;
* ``/echo-auth`` - records and returns nothing but the request's headers, as a record.

Every request is counted per path; the server stops with the fixture, and ``/stall``
never holds a test longer than ``STALL_SECONDS``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

RECORDS = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
STALL_SECONDS = 1.5


class HostileApi:
    """The server, its base URL and what it received."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                with api.lock:
                    api.hits[path] += 1
                    count = api.hits[path]
                    api.headers.append({k.lower(): v for k, v in self.headers.items()})
                api.route(self, path, count)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @staticmethod
    def send(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes | Any,
        headers: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data) if length is None else length))
        handler.end_headers()
        handler.wfile.write(data)

    def route(self, h: BaseHTTPRequestHandler, path: str, count: int) -> None:  # noqa: PLR0912
        parts = path.strip("/").split("/")
        head = parts[0]
        if head == "ok":
            self.send(h, 200, RECORDS)
        elif head == "flaky":
            if count <= int(parts[1]):
                self.send(h, 500, {"error": "internal"})
            else:
                self.send(h, 200, RECORDS)
        elif head == "throttled":
            if count <= int(parts[1]):
                self.send(h, 429, {"error": "slow down"}, {"Retry-After": "0"})
            else:
                self.send(h, 200, RECORDS)
        elif head == "status":
            self.send(h, int(parts[1]), {"error": f"status {parts[1]}"})
        elif head == "stall":
            self.stop.wait(STALL_SECONDS)
            self.send(h, 200, RECORDS)
        elif head == "truncated":
            self.send(h, 200, b'[{"id": 1', length=1000)
            h.close_connection = True
        elif head == "cut-json":
            self.send(h, 200, b'[{"id": 1, "name": "a"}, {"id": 2, "na')
        elif head == "html":
            self.send(h, 200, b"<html><body><h1>502 Bad Gateway</h1></body></html>")
        elif head == "nested":
            self.send(h, 200, b"[" * 100_000 + b"]" * 100_000)
        elif head == "scalars":
            self.send(h, 200, [1, 2, 3])
        elif head == "invalid-utf8":
            self.send(h, 200, b'[{"id": 1, "name": "caf\xe9"}]')
        elif head == "loop":
            other = "b" if parts[1] == "a" else "a"
            self.send(h, 302, b"", {"Location": f"/loop/{other}"})
        elif head == "self":
            self.send(h, 301, b"", {"Location": "/self"})
        elif head == "echo-auth":
            self.send(h, 200, [{"id": 1, "seen": "ok"}])
        else:
            self.send(h, 404, {"error": "no such route"})


@contextmanager
def serving() -> Iterator[HostileApi]:
    """Run the hostile API on a free port of 127.0.0.1 for the duration of the block."""
    api = HostileApi()
    thread = threading.Thread(
        target=api.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    started = time.monotonic()
    try:
        yield api
    finally:
        api.stop.set()
        api.server.shutdown()
        api.server.server_close()
        thread.join(timeout=5)
        assert time.monotonic() - started < 120, "the hostile API ran too long"
