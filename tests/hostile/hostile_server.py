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
* ``/echo-auth`` - records and returns nothing but the request's headers, as a record;
* ``/retry-after/<value>`` - HTTP 429 with ``Retry-After: <value>``, every time;
* ``/retry-after-once/<seconds>`` - the same once, then ``/ok``;
* ``/trickle-body`` - promises 1000 bytes and sends one every ``TRICKLE_SECONDS``;
* ``/trickle-headers`` - the status line, then one header byte every ``TRICKLE_SECONDS``;
* ``/gzip-bomb`` - about 1 MB of gzip that expands to a 1 GiB JSON document (``[ ... ]``);
* ``/gzip-page/<n>`` - a genuine gzip-compressed page of ``n`` records;
* ``/slow-pages`` - a new page (``?page=``) every ``SLOW_PAGE_SECONDS``, never the last;
* ``/endless`` - a new page for every ``?page=``, never the last;
* ``/ignore-page`` - the same records whatever the query, in an envelope that changes;
* ``/wrap/<n>`` - ``n`` pages, then page ``n + 1`` is page 1 again (``?page=``);
* ``/cursor-cycle`` - cursors ``a`` -> ``b`` -> ``a`` (``?c=``), new records each time;
* ``/link-cycle/<x>`` - ``Link: rel=next`` from ``a`` to ``b`` and back, new records each time.

Every request is counted per path; the server stops with the fixture, and ``/stall`` and
the trickles never hold a test longer than ``STALL_SECONDS`` and ``TRICKLE_BYTES`` ticks.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

RECORDS = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
STALL_SECONDS = 1.5
TRICKLE_SECONDS = 0.2
TRICKLE_BYTES = 300  # 60 s of trickle at most: a client without a deadline sits it out
SLOW_PAGE_SECONDS = 0.3
BOMB_BYTES = 1 << 30


@functools.cache
def gzip_bomb() -> bytes:
    """gzip of ``[``, 1 GiB of spaces and ``]``: valid JSON, about 1 MB on the wire.

    Built of gzip members (a stream may hold several), each 1 MiB of JSON, so it takes
    milliseconds to make.
    """
    spaces = b" " * (1 << 20)
    first = gzip.compress(b"[" + spaces[1:], 9)
    middle = gzip.compress(spaces, 9)
    last = gzip.compress(spaces[1:] + b"]", 9)
    return first + middle * ((BOMB_BYTES >> 20) - 2) + last


def page_records(page: int, count: int = 2) -> list[dict[str, Any]]:
    """Records unique to one page number."""
    return [{"id": page * 100 + i, "page": page} for i in range(count)]


class HostileApi:
    """The server, its base URL and what it received."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.headers: list[dict[str, str]] = []
        self.queries: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                path = parts.path
                with api.lock:
                    api.hits[path] += 1
                    count = api.hits[path]
                    api.headers.append({k.lower(): v for k, v in self.headers.items()})
                    api.queries.append(dict(parse_qsl(parts.query)))
                try:
                    api.route(self, path, count, dict(parse_qsl(parts.query)))
                except OSError:  # the client gave up (a deadline, a size cap): fine
                    self.close_connection = True

            def handle(self) -> None:
                with contextlib.suppress(ConnectionError):  # a client that hung up early
                    super().handle()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.scheme = "http"

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

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

    def trickle(self, h: BaseHTTPRequestHandler, data: bytes) -> None:
        """Send ``data`` one byte per tick, until it ends, the client leaves or we stop."""
        for byte in data[:TRICKLE_BYTES]:
            if self.stop.wait(TRICKLE_SECONDS):
                return
            h.wfile.write(bytes([byte]))
            h.wfile.flush()
        h.close_connection = True

    def route(  # noqa: PLR0912, PLR0915 - one branch per route, flat on purpose
        self, h: BaseHTTPRequestHandler, path: str, count: int, query: dict[str, str]
    ) -> None:
        parts = path.strip("/").split("/")
        head = parts[0]
        page = int(query.get("page", "1"))
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
        elif head == "retry-after":
            self.send(h, 429, {"error": "slow down"}, {"Retry-After": unquote(parts[1])})
        elif head == "retry-after-once":
            if count == 1:
                self.send(h, 429, {"error": "slow down"}, {"Retry-After": parts[1]})
            else:
                self.send(h, 200, RECORDS)
        elif head == "trickle-body":
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", "1000")
            h.end_headers()
            h.wfile.flush()
            self.trickle(h, b"[" + b" " * 998 + b"]")
        elif head == "trickle-headers":
            h.wfile.write(b"HTTP/1.1 200 OK\r\n")
            h.wfile.flush()
            self.trickle(h, b"X-Slow: " + b"z" * 1000 + b"\r\n\r\n")
        elif head == "gzip-bomb":
            self.send(h, 200, gzip_bomb(), {"Content-Encoding": "gzip"})
        elif head == "gzip-page":
            body = json.dumps([{"id": i, "text": f"row {i} " * 8} for i in range(int(parts[1]))])
            self.send(h, 200, gzip.compress(body.encode(), 6), {"Content-Encoding": "gzip"})
        elif head == "slow-pages":
            if not self.stop.wait(SLOW_PAGE_SECONDS):
                self.send(h, 200, page_records(page))
        elif head == "endless":
            self.send(h, 200, page_records(page))
        elif head == "ignore-page":
            self.send(h, 200, {"served": count, "items": RECORDS})
        elif head == "wrap":
            self.send(h, 200, page_records((page - 1) % int(parts[1]) + 1))
        elif head == "cursor-cycle":
            after = {"": "a", "a": "b", "b": "a"}[query.get("c", "")]
            self.send(h, 200, {"items": page_records(len(self.headers)), "next": after})
        elif head == "link-cycle":
            other = "b" if parts[1] == "a" else "a"
            link = f'<{self.url("/link-cycle/" + other)}>; rel="next"'
            self.send(h, 200, page_records(len(self.headers)), {"Link": link})
        else:
            self.send(h, 404, {"error": "no such route"})


@contextmanager
def serving(tls: tuple[Path, Path] | None = None) -> Iterator[HostileApi]:
    """Run the hostile API on a free port of 127.0.0.1 for the duration of the block.

    ``tls`` (certificate and key files) serves it over HTTPS instead.
    """
    api = HostileApi()
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        api.server.socket = context.wrap_socket(api.server.socket, server_side=True)
        api.scheme = "https"
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
