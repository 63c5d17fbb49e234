"""A loopback ClickHouse HTTP server: clickhouse-connect's side of the protocol, chDB behind.

No ClickHouse server can run on the machines this project is built and tested on, and
chDB's embedded build opens no listener, so this is the closest real thing: the HTTP
framing is ours (small, below), every statement runs on chDB - the ClickHouse engine -
so SQL, types, deduplication, partitions and error codes are the engine's own.

What it implements, as clickhouse-connect uses it:

* the statement in the ``query`` URL parameter and/or the POST body (the body continues
  the parameter's text; ``INSERT ... FORMAT X`` / ``VALUES`` data follows the statement);
  one statement per request, as ClickHouse's HTTP interface (chDB alone runs several);
* ``database``, ``default_format``, ``query_id``, ``wait_end_of_query``, ``session_id``
  (+ ``session_timeout``, ``session_check``, ``close_session``), ``param_<name>`` bound
  parameters, and every other URL parameter as a setting (``SET`` on the engine; an unknown
  one is the engine's UNKNOWN_SETTING);
* request bodies in ``Content-Encoding`` zstd, lz4, gzip or deflate; responses compressed
  by ``Accept-Encoding`` when ``enable_http_compression`` is on (``loopback_codecs``);
* insert bodies in any input format the engine reads (clickhouse-connect sends Arrow for
  ``insert_arrow``, Native for ``insert``, RowBinary if asked), handed to a chDB
  streaming insert;
* results buffered with ``wait_end_of_query=1``, otherwise streamed (chunked) for formats
  whose blocks concatenate (Native, RowBinary, TSV, CSV, JSONEachRow, and ArrowStream,
  whose per-block streams are re-framed as one); an error after the first byte is written
  with ``X-ClickHouse-Exception-Tag`` as ClickHouse 25.11+ does;
* headers: ``X-ClickHouse-Summary``, ``-Query-Id``, ``-Format``, ``-Timezone``,
  ``-Server-Display-Name``, ``-Exception-Code`` (with the HTTP status ClickHouse maps the
  error to); ``GET /ping``; GET requests run with ``readonly=2``;
* authentication by Basic auth, ``X-ClickHouse-User``/``X-ClickHouse-Key`` headers or
  ``user``/``password`` URL parameters against one configured user; a failure is
  AUTHENTICATION_FAILED (516, HTTP 403);
* TLS when given a certificate and key.

What it refuses (HTTP 400/501 with a ClickHouse-style exception, never a guess):
multipart forms (external data, form-encoded parameters), ``compress``/``decompress``
(ClickHouse's own block compression), ``client_protocol_version`` (Native block info;
clickhouse-connect falls back to protocol 0), ``role``, ``quota_key``, Bearer tokens,
other content codings, other paths, other methods.  It sends no ``X-ClickHouse-Progress``
headers: a real server sends them every ``http_headers_progress_interval_ms`` while a
query runs, which keeps a long query alive past the client's read timeout; here the
client's timeout is a hard bound.

Test control (not ClickHouse; no authentication; loopback only):

* ``POST /__loopback__/faults`` with a JSON list of rules replaces the fault rules;
  ``GET`` returns them with their hit counts.  A rule: ``match`` (case-insensitive
  substring of the statement), ``phase`` (``body``: while reading the request body,
  statement in the URL; ``before``: before running it; ``after``: after it ran),
  ``action`` (``status`` with ``status``/``body``, ``reset``: close with a TCP reset,
  ``delay``: wait ``seconds`` then go on), ``times`` (how many requests it hits, -1 for
  all).  Fault waits are capped at ``MAX_DELAY`` seconds.
* ``GET /__loopback__/requests`` lists the requests seen (method, URL as sent, header
  names, how the user authenticated, the statement's first 500 characters, the body's
  size, seconds spent receiving it and in the engine); ``DELETE`` clears it.

Beside it: ``loopback_sql`` (the statement's shape), ``loopback_codecs`` (content
codings), ``loopback_engine`` (chDB connections, sessions, ClickHouse's errors and their
HTTP statuses), ``loopback_faults`` (fault rules).

Run: ``python clickhouse_http_server.py --path DIR [--port 0] [--user U --password P]
[--tls-cert F --tls-key F]``; it prints ``LISTENING <port>`` once it accepts requests and
stops on SIGTERM.  chDB admits one path per process: give every server its own.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import io
import json
import re
import secrets
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from loopback_codecs import (
    StreamEncoder,
    UnsupportedCodingError,
    decode_body,
    encode_whole,
    negotiate,
)
from loopback_engine import (
    AUTHENTICATION_FAILED,
    BAD_ARGUMENTS,
    HTTP_LENGTH_REQUIRED,
    NOT_IMPLEMENTED,
    SYNTAX_ERROR,
    ClickHouseError,
    Engine,
    Session,
    Sessions,
    engine_error,
    exception_text,
    http_status,
)
from loopback_faults import Faults, Rule
from loopback_sql import Statement, StatementError, shape

#: ClickHouse's default max_query_size: the SQL part of a request (inline data aside).
MAX_QUERY_SIZE = 262_144
#: Transport parameters of ClickHouse's HTTP handler (everything else is a setting).
TRANSPORT = frozenset(
    {
        "query",
        "database",
        "default_format",
        "query_id",
        "wait_end_of_query",
        "buffer_size",
        "session_id",
        "session_timeout",
        "session_check",
        "close_session",
        "user",
        "password",
        "stacktrace",
    }
)
REFUSED_PARAMETERS = {
    "compress": "ClickHouse's own block compression (compress=1)",
    "decompress": "ClickHouse's own block compression (decompress=1)",
    "client_protocol_version": "Native block info (client_protocol_version)",
    "role": "roles",
    "quota_key": "quotas",
}
#: Output formats whose per-block pieces concatenate into one valid body.
STREAMABLE = frozenset(
    {"Native", "RowBinary", "TabSeparated", "TSV", "CSV", "JSONEachRow", "JSONCompactEachRow"}
)
CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "JSON": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
}


@dataclass
class Request:
    """What one HTTP request asks for, once parsed."""

    method: str
    params: dict[str, str]
    statement: Statement
    sql: str
    data: bytes | memoryview | None
    response_coding: str | None
    whole: str | None = None  # statement and inline data, when small enough to be text


class LoopbackServer(ThreadingHTTPServer):
    """The listening server: engine, users, faults, sessions and the request log."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], options: argparse.Namespace) -> None:
        self.engine = Engine(options.path)
        self.user: str = options.user
        self.password: str = options.password
        self.display_name: str = options.display_name
        self.faults = Faults()
        self.sessions = Sessions(self.engine)
        self.requests: deque[dict[str, Any]] = deque(maxlen=10_000)
        self.tls: ssl.SSLContext | None = None
        if options.tls_cert:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(options.tls_cert, options.tls_key)
        super().__init__(address, Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept; TLS is handshaken later, on the request's own thread."""
        sock, address = super().get_request()
        # answers are written in pieces (headers, body, chunks): without NODELAY, Nagle's
        # algorithm holds the last piece until the client's delayed ACK, 40 ms a request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address


class Handler(BaseHTTPRequestHandler):
    """One connection: requests in order, keep-alive."""

    protocol_version = "HTTP/1.1"
    server_version = "ClickHouse-loopback"
    timeout = 60
    server: LoopbackServer

    def setup(self) -> None:
        """Finish the TLS handshake (a failed one just drops this connection)."""
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(self.timeout)

    def handle_one_request(self) -> None:
        """Like the base class, but a client that goes away is not an error."""
        with contextlib.suppress(ConnectionError, ssl.SSLError, TimeoutError):
            super().handle_one_request()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is kept in memory (GET /__loopback__/requests)."""

    # -- routing -------------------------------------------------------------------------

    def do_GET(self) -> None:
        """Queries (read-only), /ping, and the test control endpoints."""
        self._route()

    def do_POST(self) -> None:
        """Queries and inserts, and the test control endpoints."""
        self._route()

    def do_DELETE(self) -> None:
        """Only the test control endpoints."""
        self._route()

    def _route(self) -> None:
        self._body_pending = self.command in {"POST", "PUT"}
        self._release: Callable[[], None] | None = None
        self._seconds: dict[str, float] = {}
        parts = urlsplit(self.path)
        if parts.path.startswith("/__loopback__/"):
            self._control(parts.path)
            return
        if self.command == "DELETE":
            self._fail(ClickHouseError(NOT_IMPLEMENTED, f"method {self.command} is not supported"))
            return
        if parts.path in {"/ping", "/"} and not parts.query and self.command == "GET":
            self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            return
        if parts.path != "/":
            self._drain()
            self._send(404, f"There is no handle {parts.path}\n".encode())
            return
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        try:
            self._query(params, query_id)
        except ClickHouseError as exc:
            self._fail(exc, query_id)
        except ValueError as exc:  # a malformed number in a parameter or header
            self._fail(ClickHouseError(BAD_ARGUMENTS, f"bad request: {exc}"), query_id)

    # -- the query path ------------------------------------------------------------------

    def _query(self, params: dict[str, str], query_id: str) -> None:
        entry: dict[str, Any] = {
            "method": self.command,
            "url": self.path,
            "headers": sorted(self.headers.keys()),
            "auth": "failed",
            "user": None,
            "sql": None,
        }
        self.server.requests.append(entry)
        entry["user"], entry["auth"] = self._authenticate(params)
        for name, what in REFUSED_PARAMETERS.items():
            if name in params:
                raise ClickHouseError(
                    NOT_IMPLEMENTED, f"{what} is not supported by the loopback server"
                )
        if self.headers.get_content_type() == "multipart/form-data":
            raise ClickHouseError(
                NOT_IMPLEMENTED,
                "multipart/form-data (external data, form-encoded parameters) is not supported "
                "by the loopback server",
            )
        head = params.get("query", "")
        started = time.perf_counter()
        body = self._read_body(head)
        read = time.perf_counter()
        request = self._parse(params, head, body)
        entry["sql"] = request.sql[:500]
        entry["bytes"] = len(body)
        entry["seconds"] = self._seconds = {"body": round(read - started, 6)}
        session_id = params.get("session_id")
        session: Session | None = None
        if session_id:
            timeout = float(params.get("session_timeout") or 60)
            if not 0 < timeout <= 3600:
                raise ClickHouseError(BAD_ARGUMENTS, f"Session timeout {timeout} is out of range")
            session = self.server.sessions.acquire(
                session_id, timeout, check=params.get("session_check") == "1"
            )
        connection = session.connection if session else self.server.engine.connect()

        def release() -> None:
            # before the answer's last byte, as ClickHouse does: a client that sends its
            # next request on the session right after the answer must find it free
            if session is not None and session_id:
                close = params.get("close_session") == "1"
                self.server.sessions.release(session_id, session, close=close)
            else:
                connection.close()

        self._release = release
        try:
            self._prepare(connection, request)
            self._fault("before", request.sql)
            self._execute(connection, request, query_id)
        finally:
            self._release_engine()

    def _release_engine(self) -> None:
        """Hand back the request's engine connection (once)."""
        release, self._release = self._release, None
        if release is not None:
            release()

    def _authenticate(self, params: dict[str, str]) -> tuple[str, str]:
        header = self.headers.get("Authorization")
        if header and header.lower().startswith("bearer "):
            raise ClickHouseError(
                NOT_IMPLEMENTED, "Bearer tokens are not supported by the loopback server"
            )
        if header and header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise ClickHouseError(
                    AUTHENTICATION_FAILED, "Invalid Basic authorization header"
                ) from None
            user, _, password = decoded.partition(":")
            how = "basic"
        elif "X-ClickHouse-User" in self.headers:
            user = self.headers.get("X-ClickHouse-User", "")
            password = self.headers.get("X-ClickHouse-Key", "")
            how = "headers"
        elif "user" in params or "password" in params:
            user, password, how = params.get("user", "default"), params.get("password", ""), "url"
        else:
            user, password, how = "default", "", "none"
        if user != self.server.user or not secrets.compare_digest(
            password.encode(), self.server.password.encode()
        ):
            raise ClickHouseError(
                AUTHENTICATION_FAILED,
                f"{user}: Authentication failed: password is incorrect, or there is no user "
                "with such name.",
            )
        return user, how

    def _read_body(self, head: str) -> bytes:
        if self.command != "POST":
            return b""
        self._body_pending = False
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            raise ClickHouseError(
                HTTP_LENGTH_REQUIRED,
                "The Transfer-Encoding is not chunked and there is no Content-Length header "
                "for POST request",
            )
        size = int(length)
        rule = self.server.faults.take("body", head) if head else None
        if rule is None:
            return self.rfile.read(size)
        first = self.rfile.read(size // 2)
        self._apply(rule)  # a reset or an answer ends here; a delay goes on
        return first + self.rfile.read(size - len(first))

    def _read_chunked(self) -> bytes:
        out = io.BytesIO()
        while True:
            line = self.rfile.readline(1024).split(b";")[0].strip()
            size = int(line, 16)
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return out.getvalue()
            out.write(self.rfile.read(size))
            self.rfile.readline(8)

    def _parse(self, params: dict[str, str], head: str, body: bytes) -> Request:
        try:
            body = decode_body(body, self.headers.get("Content-Encoding"))
        except UnsupportedCodingError as exc:
            raise ClickHouseError(NOT_IMPLEMENTED, str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - any decoder's error means a bad body
            raise ClickHouseError(
                BAD_ARGUMENTS,
                f"cannot decode the {self.headers.get('Content-Encoding')} body: {exc}",
            ) from None
        head_bytes = head.encode()
        if head_bytes and body:  # the body continues the statement on a new line
            text_bytes: bytes | memoryview = head_bytes + b"\n" + body
        else:
            text_bytes = head_bytes or body
        limit = min(len(text_bytes), max(MAX_QUERY_SIZE, len(head_bytes)))
        text = bytes(text_bytes[:limit]).decode("latin-1")
        try:
            statement = shape(text)
        except StatementError as exc:
            raise ClickHouseError(exc.code, str(exc)) from None
        if statement.data_start is None and limit < len(text_bytes):
            raise ClickHouseError(SYNTAX_ERROR, "Max query size exceeded")
        data: bytes | memoryview | None = None
        if statement.data_start is not None:
            if head_bytes and statement.data_start <= len(head_bytes) + 1:
                tail = head_bytes[statement.data_start :]
                data = tail + b"\n" + body if tail else body  # the body itself: no copy
            else:
                data = memoryview(text_bytes)[statement.data_start :]
        try:
            sql = text[: statement.sql_end].encode("latin-1").decode()
        except UnicodeDecodeError:
            raise ClickHouseError(SYNTAX_ERROR, "the statement is not valid UTF-8") from None
        enabled = params.get("enable_http_compression")
        compress = self.server.engine.compression_default if enabled is None else enabled == "1"
        coding = negotiate(self.headers.get("Accept-Encoding")) if compress else None
        whole = None
        if data is not None and len(text_bytes) <= MAX_QUERY_SIZE:
            with contextlib.suppress(UnicodeDecodeError):
                whole = bytes(text_bytes).decode()
        return Request(self.command, params, statement, sql, data, coding, whole)

    def _prepare(self, connection: Any, request: Request) -> None:
        """Current database and settings on the engine connection."""
        database = request.params.get("database")
        settings = {k: v for k, v in request.params.items() if k not in TRANSPORT}
        settings = {k: v for k, v in settings.items() if not k.startswith("param_")}
        if request.method == "GET" and "readonly" not in settings:
            settings["readonly"] = "2"
        for name in settings:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ClickHouseError(BAD_ARGUMENTS, f"invalid setting name {name!r}")
        try:
            if database:
                connection.query(f"USE `{database.replace('`', '``')}`", "TabSeparated")
            if settings:
                assignments = ", ".join(f"{k} = {_quote(v)}" for k, v in settings.items())
                connection.query(f"SET {assignments}", "TabSeparated")
        except Exception as exc:  # noqa: BLE001 - the engine's own refusal
            raise engine_error(exc) from None

    def _execute(self, connection: Any, request: Request, query_id: str) -> None:
        statement = request.statement
        parameters = {
            k.removeprefix("param_"): v for k, v in request.params.items() if k.startswith("param_")
        }
        headers = {"X-ClickHouse-Query-Id": query_id}
        started = time.perf_counter()
        if statement.data_start is not None and parameters and request.whole is not None:
            # VALUES with bound parameters: the engine substitutes them as it parses the
            # data, so the statement and its data go to it as one query text
            statement = Statement(statement.keyword, len(request.whole))
            request.sql = request.whole
        if statement.data_start is not None:
            began = time.perf_counter()
            written = self._insert(connection, request)
            self._seconds["engine"] = round(time.perf_counter() - began, 6)
            summary = {"written_rows": written[0], "written_bytes": written[1]}
            self._fault("after", request.sql)
            self._send(200, b"", headers | _summary(summary, started))
            return
        fmt = statement.output_format or request.params.get("default_format") or "TabSeparated"
        rows = statement.returns_rows
        if rows:
            headers |= {
                "X-ClickHouse-Format": fmt,
                "X-ClickHouse-Timezone": self.server.engine.timezone,
                "Content-Type": CONTENT_TYPES.get(fmt, "application/octet-stream"),
            }
        streamed = (
            statement.keyword in {"SELECT", "WITH"}  # what the engine can stream
            and request.params.get("wait_end_of_query") != "1"
            and (fmt in STREAMABLE or fmt == "ArrowStream")
        )
        if streamed:
            self._stream(
                connection,
                request,
                fmt=fmt,
                parameters=parameters,
                headers=headers,
                started=started,
            )
            return
        try:
            began = time.perf_counter()
            result = connection.query(request.sql, fmt, params=parameters)
            self._seconds["engine"] = round(time.perf_counter() - began, 6)
        except Exception as exc:  # noqa: BLE001 - the engine's error, answered as such
            raise engine_error(exc) from None
        self._fault("after", request.sql)
        summary = {
            "read_rows": result.rows_read(),
            "read_bytes": result.bytes_read(),
            "written_rows": result.rows_written(),
            "written_bytes": result.bytes_written(),
        }
        body = result.bytes() or b""
        if request.response_coding and body:
            headers["Content-Encoding"] = request.response_coding
            body = encode_whole(body, request.response_coding)
        self._send(200, body, headers | _summary(summary, started))

    def _insert(self, connection: Any, request: Request) -> tuple[int, int]:
        fmt = request.statement.insert_format or ""
        try:
            inserter = connection.send_insert(request.sql, fmt)
        except Exception as exc:  # noqa: BLE001
            raise engine_error(exc) from None
        try:
            if request.data:
                inserter.append(
                    request.data if isinstance(request.data, bytes) else bytes(request.data)
                )
            result = inserter.finish()
        except Exception as exc:  # noqa: BLE001
            with contextlib.suppress(Exception):
                inserter.cancel()
            raise engine_error(exc) from None
        return result.rows_written, result.bytes_written

    def _stream(
        self,
        connection: Any,
        request: Request,
        *,
        fmt: str,
        parameters: dict[str, str],
        headers: dict[str, str],
        started: float,
    ) -> None:
        """Send the result block by block (chunked); an error midway is tagged in the body."""
        try:
            stream = connection.send_query(request.sql, fmt, params=parameters)
            chunks = iter(stream)
            first = next(chunks, None)
        except Exception as exc:  # noqa: BLE001 - nothing sent yet: a normal error answer
            raise engine_error(exc) from None
        self._fault("after", request.sql)
        tag = secrets.token_hex(8)
        headers = headers | _summary({}, started) | {"X-ClickHouse-Exception-Tag": tag}
        headers["Transfer-Encoding"] = "chunked"
        encoder = StreamEncoder(request.response_coding) if request.response_coding else None
        if encoder:
            headers["Content-Encoding"] = request.response_coding or ""
        reframe = _ArrowReframer() if fmt == "ArrowStream" else None
        self._start(200, headers)

        def emit(data: bytes) -> None:
            if encoder:
                data = encoder.compress(data)
            if data:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

        try:
            chunk = first
            while chunk is not None:
                data = chunk.bytes() if hasattr(chunk, "bytes") else bytes(chunk)
                emit(reframe.add(data) if reframe else data)
                chunk = next(chunks, None)
            if reframe:
                emit(reframe.finish())
        except Exception as exc:  # noqa: BLE001 - the engine failed midway
            error = engine_error(exc)
            text = exception_text(error, self.server.engine).encode()
            emit(
                b"__exception__\r\n%s\r\n%s\n%d %s\r\n__exception__\r\n"
                % (tag.encode(), text, len(text), tag.encode())
            )
        finally:
            with contextlib.suppress(Exception):
                stream.close()
            self._release_engine()
        if encoder:
            tail = encoder.finish()
            if tail:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(tail), tail))
        self.wfile.write(b"0\r\n\r\n")

    # -- faults and answers --------------------------------------------------------------

    def _fault(self, phase: str, sql: str) -> None:
        rule = self.server.faults.take(phase, sql)
        if rule is not None:
            self._apply(rule)

    def _apply(self, rule: Rule) -> None:
        if rule.action == "delay":
            time.sleep(rule.seconds)
            return
        if rule.action == "reset":
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            raise _ResetByFaultError
        self._send(rule.status, rule.body.encode(), {"Content-Type": "text/plain"})
        raise _AnsweredByFaultError

    def _drain(self) -> None:
        """Read a request body left unread (keep-alive needs it), or close after answering."""
        if not self._body_pending:
            return
        self._body_pending = False
        length = self.headers.get("Content-Length")
        if length is not None and int(length) <= 64 << 20:
            self.rfile.read(int(length))
        else:
            self.close_connection = True

    def _fail(self, error: ClickHouseError, query_id: str | None = None) -> None:
        self._drain()
        status = http_status(self.server.engine.error_name(error.code))
        headers = {"X-ClickHouse-Exception-Code": str(error.code)}
        if query_id:
            headers["X-ClickHouse-Query-Id"] = query_id
        body = exception_text(error, self.server.engine).encode() + b"\n"
        self._send(status, body, headers)

    def _start(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("X-ClickHouse-Server-Display-Name", self.server.display_name)
        headers.setdefault("Content-Type", "text/plain; charset=UTF-8")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self._release_engine()
        headers = dict(headers or {})
        headers["Content-Length"] = str(len(body))
        self._start(status, headers)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _control(self, path: str) -> None:
        if path == "/__loopback__/faults" and self.command == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            self._body_pending = False
            try:
                self.server.faults.replace(json.loads(self.rfile.read(length) or b"[]"))
            except (TypeError, ValueError) as exc:
                self._send(400, f"bad fault rules: {exc}\n".encode())
                return
        elif path == "/__loopback__/requests" and self.command == "DELETE":
            self.server.requests.clear()
        elif path not in {"/__loopback__/faults", "/__loopback__/requests"}:
            self._send(404, b"unknown control path\n")
            return
        listing: Any = (
            self.server.faults.listing() if path.endswith("faults") else list(self.server.requests)
        )
        self._send(200, json.dumps(listing).encode(), {"Content-Type": "application/json"})

    def handle(self) -> None:
        """Serve requests until the client closes; a fault may end the connection early."""
        try:
            super().handle()
        except _AnsweredByFaultError:
            self.close_connection = True
        except _ResetByFaultError:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.request.close()


class _AnsweredByFaultError(Exception):
    """A fault answered the request; the connection is closed."""


class _ResetByFaultError(Exception):
    """A fault resets the connection."""


class _ArrowReframer:
    """chDB streams ArrowStream block by block, each a complete IPC stream; clients want one."""

    def __init__(self) -> None:
        self._sink = io.BytesIO()
        self._writer: Any = None

    def add(self, data: bytes) -> bytes:
        import pyarrow as pa

        reader = pa.ipc.open_stream(data)
        if self._writer is None:
            self._writer = pa.ipc.new_stream(self._sink, reader.schema)
        for batch in reader:
            self._writer.write_batch(batch)
        return self._take()

    def finish(self) -> bytes:
        if self._writer is not None:
            self._writer.close()
        return self._take()

    def _take(self) -> bytes:
        out = self._sink.getvalue()
        self._sink.seek(0)
        self._sink.truncate()
        return out


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _summary(values: dict[str, int], started: float) -> dict[str, str]:
    keys = ("read_rows", "read_bytes", "written_rows", "written_bytes", "total_rows_to_read")
    summary = {k: str(values.get(k, 0)) for k in keys}
    summary |= {"result_rows": "0", "result_bytes": "0"}
    summary["elapsed_ns"] = str(int((time.perf_counter() - started) * 1e9))
    return {"X-ClickHouse-Summary": json.dumps(summary, separators=(",", ":"))}


def main() -> None:
    """Run the server until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, required=True, help="chDB directory (own per server)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user", default="default")
    parser.add_argument("--password", default="")
    parser.add_argument("--display-name", default="loopback")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    options = parser.parse_args()
    if options.host not in {"127.0.0.1", "::1", "localhost"}:
        parser.error("the loopback server listens on the loopback interface only")
    server = LoopbackServer((options.host, options.port), options)

    def stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        server.engine.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
