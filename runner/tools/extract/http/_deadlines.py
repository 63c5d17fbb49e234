"""A total deadline per request that holds against a server trickling one byte at a time.

Socket timeouts bound each read, not the request: a server that sends a byte every five
seconds never trips a 30-second read timeout, during the headers or the body.  So each
attempt arms a :class:`Watch`: a timer that, when the deadline passes, shuts down the
socket(s) the attempt is using, which makes the blocked read return at once.  The pool's
connections register their sockets with the watch of the attempt running in their thread
(a context variable, so parallel extractions in other threads are not affected).

Not covered: a TLS handshake trickled byte by byte (the socket is handed to the TLS layer
before the watch can see it); each of its reads is still bounded by ``timeout``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING

from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection

if TYPE_CHECKING:
    from urllib3.response import HTTPResponse

_ACTIVE: ContextVar[Watch | None] = ContextVar("http_request_watch", default=None)


def _shut(sock: socket.socket) -> None:
    """Shut ``sock`` down for both directions; a blocked read on it returns at once."""
    # the plain socket's method, also for a TLS socket: tearing down the TLS state under
    # a reading thread is not safe, ending the TCP stream is; OSError: closed already
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Watch:
    """The deadline of one attempt; a context manager around the attempt."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._done = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._token: Token[Watch | None] | None = None

    def __enter__(self) -> Watch:
        self._token = _ACTIVE.set(self)
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._lock:
            self._done = True
            self._sockets.clear()
        self._timer.cancel()
        if self._token is not None:
            _ACTIVE.reset(self._token)

    def attach(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it already has)."""
        with self._lock:
            if self._done:
                return
            if self.expired:
                _shut(sock)
            else:
                self._sockets.append(sock)

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _attach(sock: socket.socket | None) -> None:
    watch = _ACTIVE.get()
    if watch is not None and sock is not None:
        watch.attach(sock)


class _WatchedHTTPConnection(HTTPConnection):
    """An HTTP connection whose socket the running attempt's watch may shut down."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _attach(sock)
        return sock

    def getresponse(self) -> HTTPResponse:  # type: ignore[override] # as urllib3's
        """Register the (possibly reused) socket before waiting for the status line."""
        _attach(self.sock)
        return super().getresponse()


class _WatchedHTTPSConnection(HTTPSConnection):
    """The HTTPS twin of :class:`_WatchedHTTPConnection`."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _attach(sock)
        return sock

    def getresponse(self) -> HTTPResponse:  # type: ignore[override] # as urllib3's
        """Register the (possibly reused) socket before waiting for the status line."""
        _attach(self.sock)
        return super().getresponse()


class WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def open_pool(*, verify: bool, ca_cert: str | None) -> PoolManager:
    """A connection pool whose requests a :class:`Watch` can cut short."""
    pool = PoolManager(cert_reqs="CERT_REQUIRED" if verify else "CERT_NONE", ca_certs=ca_cert)
    pool.pool_classes_by_scheme = {
        "http": WatchedHTTPConnectionPool,
        "https": WatchedHTTPSConnectionPool,
    }
    return pool
