"""A loopback HTTP receiver that records what it is sent: a Pushgateway or webhook stand-in.

It binds 127.0.0.1 on a free port, answers each request with the next status of
``statuses`` (the last one repeats), and can instead hang: read the request, then send
nothing (``hang``) or trickle one header byte at a time (``trickle``) until it is stopped.
Every wait is bounded by the stop event, so stopping it ends every handler.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: Longest a hanging handler holds its connection even if the test forgets to stop it.
HANG_LIMIT_SECONDS = 60


@dataclass
class Received:
    """One request as the receiver read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """What a test controls and reads."""

    url: str
    statuses: list[int] = field(default_factory=lambda: [200])
    mode: str = "answer"  # answer, hang or trickle
    body: bytes = b""  # what a successful answer carries
    requests: list[Received] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_status(self) -> int:
        with self.lock:
            index = min(len(self.requests) - 1, len(self.statuses) - 1)
            return self.statuses[index]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with receiver.lock:
                receiver.requests.append(
                    Received(self.command, self.path, dict(self.headers.items()), body)
                )
            if receiver.mode == "hang":
                receiver.stop.wait(HANG_LIMIT_SECONDS)
                return
            if receiver.mode == "trickle":  # a status line that never ends, byte by byte
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 600:
                    if receiver.stop.wait(0.1):
                        return
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:  # the client gave up: what the test expects
                        return
                return
            status = receiver.next_status()
            body = receiver.body if status < 300 else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _any  # noqa: N815 - http.server names them

        def log_message(self, *_: object) -> None:  # keep the test output clean
            return

    return Handler


@contextmanager
def running_receiver(statuses: list[int] | None = None, mode: str = "answer") -> Iterator[Receiver]:
    """A receiver serving on 127.0.0.1 until the block ends."""
    receiver = Receiver(url="", statuses=statuses or [200], mode=mode)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(10)
