"""ClickHouse failures in the framework's terms: fatal or retriable, safe to re-send or not.

One place decides what an exception from clickhouse-connect (or chDB, or urllib3 below it)
means for a run: which codes are transient, which refusals are configuration, whether a
request whose answer was lost may have run, and whether a statement may be sent twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from runner.errors import FatalError, PipelineError, WarehouseUnavailableError

__all__ = [
    "AUTHENTICATION_CODES",
    "READONLY",
    "RETRIABLE_CODES",
    "UNKNOWN_DATABASE",
    "answer_lost",
    "broken_off",
    "refusal",
    "safe_to_resend",
    "translate_error",
]

# ClickHouse error codes worth retrying: timeouts, network, overload, replica trouble.
RETRIABLE_CODES = frozenset(
    {
        3,  # UNEXPECTED_END_OF_FILE
        159,  # TIMEOUT_EXCEEDED
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        242,  # TABLE_IS_READ_ONLY
        252,  # TOO_MANY_PARTS
        319,  # UNKNOWN_STATUS_OF_INSERT
        425,  # SYSTEM_ERROR
        999,  # KEEPER_EXCEPTION
        1000,  # POCO_EXCEPTION
    }
)
UNKNOWN_DATABASE = 81
READONLY = 164
# UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD, AUTHENTICATION_FAILED
AUTHENTICATION_CODES = frozenset({192, 193, 194, 516})
_CODE = re.compile(r"Code: (\d+)")
# Statements that leave the same result when run twice, so a lost answer may be re-sent:
# reads, CREATE ... IF NOT EXISTS, DROP ... IF EXISTS, and single-command ALTERs that
# replace or drop a partition or modify a setting (no comma: no second command).  A ';'
# anywhere but at the end (even inside a literal) makes a statement count as unsafe.
_SAFE_TO_RESEND = re.compile(
    r"\s*(?:(?:SELECT|WITH|SHOW|DESCRIBE|DESC|EXISTS|EXPLAIN)\b"
    r"|CREATE\s+(?:TEMPORARY\s+)?(?:TABLE|DATABASE|VIEW|DICTIONARY)\s+IF\s+NOT\s+EXISTS\b"
    r"|DROP\s+(?:TEMPORARY\s+)?(?:TABLE|DATABASE|VIEW|DICTIONARY)\s+IF\s+EXISTS\b)"
    r"[^;]*;?\s*"  # one statement: a ';' followed by more could start a second
    r"|\s*ALTER\s+TABLE\s+[^\s,;]+(?:\s+ON\s+CLUSTER\s+[^\s,;]+)?\s+"
    r"(?:(?:REPLACE|DROP)\s+PARTITION|MODIFY\s+SETTING)\b[^,;]*;?\s*",
    re.IGNORECASE | re.DOTALL,
)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it (chained exceptions, urllib3's retry reasons), once each."""
    from urllib3.exceptions import MaxRetryError

    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, MaxRetryError) and current.reason is not None:
            pending.append(current.reason)
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        pending += [a for a in current.args if isinstance(a, BaseException)]


def refusal(exc: BaseException, message: str) -> str | None:
    """Why the server cannot be used with these settings, when retrying will not help.

    Refused credentials and a TLS certificate that does not verify are configuration
    errors (exit 3): a Job retried with the same Secret and CA fails the same way, and
    hammering a server with bad credentials can lock the account.
    """
    import ssl

    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"certificate verify failed: {cause.verify_message}; set RUNNER_TLS_CA_CERT to "
                "the CA that signed the server's certificate (or RUNNER_TLS_VERIFY=false)"
            )
    match = _CODE.search(message)
    code = getattr(exc, "code", None) or (int(match.group(1)) if match else None)
    if code in AUTHENTICATION_CODES:
        return f"{message} (check the user in RUNNER_WAREHOUSE_URL and RUNNER_CLICKHOUSE_PASSWORD)"
    return None


def answer_lost(exc: BaseException) -> bool:
    """Whether a failed HTTP request may have run: sent, then cut off before its answer.

    The connection broke or timed out after the request went out.  Failures to connect,
    and answers from the server (errors included), are not: a request that never
    arrived, or that ClickHouse answered, did not half-happen.
    """
    from urllib3.exceptions import ConnectTimeoutError, HTTPError, MaxRetryError, ProxyError

    for cause in _causes(exc):
        if isinstance(cause, (ConnectTimeoutError, ProxyError)):  # incl. NewConnectionError
            return False
        if isinstance(cause, HTTPError) and not isinstance(cause, MaxRetryError):
            return True  # reset, remote closed, read timeout, TLS break
    return False


def safe_to_resend(sql: str) -> bool:
    """Whether running ``sql`` twice leaves the same result as running it once."""
    return _SAFE_TO_RESEND.fullmatch(sql) is not None


def translate_error(exc: BaseException, action: str) -> PipelineError:
    """Map a clickhouse-connect exception to the framework's fatal/retriable split."""
    from clickhouse_connect.driver import exceptions as ch

    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    match = _CODE.search(message)
    code = int(match.group(1)) if match else None
    if isinstance(exc, ch.OperationalError) or (code is not None and code in RETRIABLE_CODES):
        return WarehouseUnavailableError(f"{action}: {message}")
    if code == READONLY:
        return FatalError(
            f"{action}: the ClickHouse user may only read (its `readonly` setting is on), and "
            f"this needs to write: use a user with write grants ({message})"
        )
    return FatalError(f"{action}: {message}")


def broken_off(stream: Any, exc: Exception) -> str | None:
    """What to say when a server ended a result stream with an error after some blocks.

    ClickHouse (25.11+) then writes its exception into the body after a marker whose tag
    it announced in ``X-ClickHouse-Exception-Tag``; the Arrow reader takes those bytes for
    a block and fails with a meaningless size.  The message is lost with them, so point
    to where it is kept.
    """
    import pyarrow as pa

    headers = getattr(getattr(stream, "source", None), "headers", None)
    if not isinstance(exc, pa.ArrowInvalid) or headers is None:
        return None
    if not headers.get("X-ClickHouse-Exception-Tag"):
        return None
    query_id = headers.get("X-ClickHouse-Query-Id", "?")
    return (
        f"ClickHouse stopped the result midway with an error (query_id {query_id}; "
        "its message is in the server's system.query_log)"
    )
