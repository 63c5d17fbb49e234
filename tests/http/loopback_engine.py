"""The loopback server's engine side: chDB connections, HTTP sessions, ClickHouse's errors.

Every request gets a fresh chDB connection on the server's path (its own settings and
current database, about 2 ms to open); an HTTP session keeps one between requests.  Errors
are answered as ClickHouse answers them: ``Code: N. DB::Exception: ... (NAME) (version V)``
with the HTTP status ClickHouse gives that error (the names come from the engine).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: HTTP status of an exception, by its name (the engine names every code it raises).
STATUS_BY_NAME = {
    401: {"REQUIRED_PASSWORD"},
    403: {"UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "ACCESS_DENIED"},
    404: {
        "UNKNOWN_TABLE",
        "UNKNOWN_FUNCTION",
        "UNKNOWN_IDENTIFIER",
        "UNKNOWN_TYPE",
        "UNKNOWN_STORAGE",
        "UNKNOWN_DATABASE",
        "UNKNOWN_SETTING",
        "UNKNOWN_AGGREGATE_FUNCTION",
        "UNKNOWN_FORMAT",
        "UNKNOWN_DATABASE_ENGINE",
        "UNKNOWN_TYPE_OF_QUERY",
    },
    408: {"TIMEOUT_EXCEEDED"},
    411: {"HTTP_LENGTH_REQUIRED"},
    413: {"QUERY_IS_TOO_LARGE"},
    501: {"NOT_IMPLEMENTED"},
    503: {"SOCKET_TIMEOUT", "CANNOT_OPEN_FILE", "CANNOT_SCHEDULE_TASK"},
}
_BAD_REQUEST = re.compile(
    r"^(BAD_ARGUMENTS|CANNOT_PARSE_\w+|CANNOT_COMPILE_REGEXP|DUPLICATE_COLUMN|ILLEGAL_COLUMN"
    r"|THERE_IS_NO_COLUMN|SYNTAX_ERROR|INCORRECT_DATA|TYPE_MISMATCH|TOO_DEEP_AST|TOO_BIG_AST"
    r"|UNKNOWN_ELEMENT_IN_AST|UNKNOWN_TYPE_OF_AST_NODE|UNEXPECTED_AST_STRUCTURE"
    r"|VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE)$"
)
_CODE = re.compile(r"Code: (\d+)\. ")
_VERSION = re.compile(r"\s*\(version [^)]*\)\s*$")
# Error codes the framing itself raises (numbers as in ClickHouse).
NOT_IMPLEMENTED, SYNTAX_ERROR, AUTHENTICATION_FAILED = 48, 62, 516
SESSION_NOT_FOUND, SESSION_IS_LOCKED, HTTP_LENGTH_REQUIRED = 372, 373, 381
UNKNOWN_FORMAT, BAD_ARGUMENTS = 73, 36


class ClickHouseError(Exception):
    """An exception to answer with: a ClickHouse error code and its message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def engine_error(exc: BaseException) -> ClickHouseError:
    """A chDB exception as the server's exception (its code is in its text)."""
    text = str(exc).strip()
    match = _CODE.search(text)  # after chDB's own prefix ("Streaming insert finish failed: ")
    if not match:
        return ClickHouseError(1001, text)  # STD_EXCEPTION: the engine gave no code
    message = _VERSION.sub("", text[match.end() :].removeprefix("DB::Exception: "))
    return ClickHouseError(int(match.group(1)), message)


def http_status(name: str) -> int:
    """The HTTP status ClickHouse answers an exception of this name with."""
    for status, names in STATUS_BY_NAME.items():
        if name in names:
            return status
    return 400 if _BAD_REQUEST.match(name) else 500


class Engine:
    """chDB at one path: a fresh connection per request, one kept per HTTP session."""

    def __init__(self, path: Path) -> None:
        import chdb

        self._chdb = chdb
        self.path = str(path)
        self._keeper = chdb.connect(self.path)  # keeps the engine open between requests
        row = self._keeper.query("SELECT version(), timezone()", "TabSeparated")
        self.version, self.timezone = row.bytes().decode().strip().split("\t")
        default = self._keeper.query("SELECT getSetting('enable_http_compression')", "TSV")
        self.compression_default = default.bytes().decode().strip() in {"1", "true"}
        self._names: dict[int, str] = {}

    def connect(self) -> Any:
        """A new engine connection (its own settings and current database)."""
        return self._chdb.connect(self.path)

    def error_name(self, code: int) -> str:
        """ClickHouse's name for an error code, from the engine."""
        if code not in self._names:
            result = self._keeper.query(f"SELECT errorCodeToName({int(code)})", "TSV")
            self._names[code] = result.bytes().decode().strip()
        return self._names[code]

    def close(self) -> None:
        """Close the engine's kept connection."""
        self._keeper.close()


@dataclass
class Session:
    """An HTTP session: one engine connection kept between requests."""

    connection: Any
    timeout: float
    expires: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Sessions:
    """``session_id`` → Session, expired lazily."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def acquire(self, session_id: str, timeout: float, *, check: bool) -> Session:
        """The session, locked for one request (created unless ``check``)."""
        with self._lock:
            now = time.monotonic()
            for key in [k for k, s in self._sessions.items() if s.expires < now]:
                if self._sessions[key].lock.acquire(blocking=False):
                    self._sessions.pop(key).connection.close()
            session = self._sessions.get(session_id)
            if session is None:
                if check:
                    raise ClickHouseError(SESSION_NOT_FOUND, f"Session {session_id} not found")
                session = Session(self._engine.connect(), timeout)
                self._sessions[session_id] = session
        if not session.lock.acquire(blocking=False):
            raise ClickHouseError(
                SESSION_IS_LOCKED, f"Session {session_id} is locked by a concurrent client"
            )
        session.timeout = timeout
        return session

    def release(self, session_id: str, session: Session, *, close: bool) -> None:
        """Hand the session back (or close it)."""
        session.expires = time.monotonic() + session.timeout
        if close:
            with self._lock:
                self._sessions.pop(session_id, None)
            session.connection.close()
        session.lock.release()


def exception_text(error: ClickHouseError, engine: Engine) -> str:
    """ClickHouse's text of an exception (one line, with the engine's version)."""
    name = engine.error_name(error.code)
    message = str(error)
    if not message.rstrip().endswith(f"({name})"):
        message = f"{message.rstrip()} ({name})"
    return f"Code: {error.code}. DB::Exception: {message} (version {engine.version})"
