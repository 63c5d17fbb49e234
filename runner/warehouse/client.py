"""The one warehouse client: clickhouse-connect over HTTP(S), or over embedded chDB.

The URL decides the engine (``chdb:///abs/path`` or ``http(s)://user@host:port/db``); the
rest of the framework sees the same :class:`Warehouse` either way.  ClickHouse errors are
translated here into the framework's fatal/retriable split, once.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from runner.errors import (
    ConfigError,
    DatabaseMissingError,
    FatalError,
    NotReadyError,
    OutcomeUnknownError,
    PipelineError,
    WarehouseUnavailableError,
)
from runner.warehouse.sql import check_identifier, on_cluster, qualified_table

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.settings import Settings

DEFAULT_DATABASE = "analytics"
T = TypeVar("T")

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


@dataclass(frozen=True)
class RetryPolicy:
    """How transient warehouse errors are retried: exponential backoff, bounded."""

    attempts: int = 4
    base_wait: float = 0.5
    max_wait: float = 30.0


def _log_retry(action: str, attempt: int, state: Any) -> None:
    from runner.log import get_logger
    from runner.ops.retries import note_retry

    note_retry()
    error = state.outcome.exception() if state.outcome else None
    get_logger().warning(
        "transient warehouse error; retrying", action=action, attempt=attempt, error=str(error)
    )


@dataclass(frozen=True)
class WarehouseTarget:
    """Where to connect, parsed from the URL (the password is never part of it)."""

    embedded: bool
    path: Path | None = None
    host: str | None = None
    port: int | None = None
    username: str | None = None
    secure: bool = False
    database: str = DEFAULT_DATABASE

    def describe(self) -> str:
        """A loggable description, without credentials."""
        if self.embedded:
            return f"chdb://{self.path}"
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{self.host}:{self.port}/{self.database}"


_URL_PASSWORD = re.compile(r"(//[^/?#@:]*:).*@")  # to the last @: rather too much than too little


def _without_password(url: str) -> str:
    """``url`` for error messages: a password in it is masked (it may not even parse)."""
    return _URL_PASSWORD.sub(r"\1***@", url)


def parse_url(url: str, database: str | None = None) -> tuple[WarehouseTarget, str | None]:
    """Parse a warehouse URL into a target and an optional password from the URL."""
    shown = _without_password(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise ConfigError(f"invalid warehouse URL {shown!r}: {exc}") from None
    if parts.scheme == "chdb":
        if parts.netloc or not parts.path.startswith("/"):
            raise ConfigError(
                f"invalid warehouse URL {shown!r}: use chdb:///absolute/path (three slashes)"
            )
        if parts.query or parts.fragment:
            raise ConfigError(
                f"invalid warehouse URL {shown!r}: a chdb:// URL takes no query or fragment"
            )
        target = WarehouseTarget(
            embedded=True, path=Path(unquote(parts.path)), database=database or DEFAULT_DATABASE
        )
        return target, None
    if parts.scheme in {"http", "https"}:
        if not parts.hostname:
            raise ConfigError(f"invalid warehouse URL {shown!r}: no host")
        try:
            port = parts.port or (8443 if parts.scheme == "https" else 8123)
        except ValueError:
            raise ConfigError(f"invalid warehouse URL {shown!r}: bad port") from None
        path_db = parts.path.strip("/") or None
        db = check_identifier(database or path_db or DEFAULT_DATABASE, what="database")
        target = WarehouseTarget(
            embedded=False,
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else "default",
            secure=parts.scheme == "https",
            database=db,
        )
        return target, unquote(parts.password) if parts.password else None
    raise ConfigError(f"invalid warehouse URL {shown!r}: scheme must be chdb, http or https")


# What chDB keeps in a warehouse directory (only tmp/ and status until a database exists);
# a non-empty directory with none of them is not one.
_CHDB_ENTRIES = ("metadata", "data", "store", "tmp", "status")


def embedded_directory(path: Path) -> Path:
    """``path`` made ready for the embedded engine, or a ConfigError naming the setting.

    chDB writes ``data/``, ``metadata/`` and ``store/`` into the directory it is given,
    so a filesystem root or a directory already holding other files is refused rather
    than littered.
    """
    where = f"RUNNER_WAREHOUSE_URL chdb://{path}"
    if path == Path(path.anchor):
        raise ConfigError(f"{where}: the embedded warehouse needs its own directory, not {path}")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{where}: {path} is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        entries = {entry.name for entry in path.iterdir()}
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"{where}: cannot use {path} as the warehouse directory: {reason}"
        ) from None
    if entries and not entries.intersection(_CHDB_ENTRIES):
        raise ConfigError(
            f"{where}: {path} holds other files and no chDB warehouse; "
            "point the URL at an empty or new directory"
        )
    return path


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


def _refusal(exc: BaseException, message: str) -> str | None:
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


class Warehouse:
    """A connected ClickHouse, embedded or server, with errors already translated."""

    def __init__(
        self, client: Any, target: WarehouseTarget, retry: RetryPolicy | None = None
    ) -> None:
        self._client = client
        self.target = target
        self.retry = retry or RetryPolicy()

    @classmethod
    def connect(cls, settings: Settings, *, ensure_database: bool = False) -> Warehouse:
        """Open the warehouse the settings point at.

        With ``ensure_database`` the target database is created when missing (migrations
        do this); otherwise a missing database is a NotReadyError telling to migrate.
        """
        target, url_password = parse_url(settings.effective_warehouse_url, settings.database)
        client = cls._open_client(settings, target, url_password)
        retry = RetryPolicy(
            attempts=settings.retry_attempts, max_wait=settings.retry_max_wait_seconds
        )
        warehouse = cls(client, target, retry)
        if ensure_database:
            warehouse.command(
                f"CREATE DATABASE IF NOT EXISTS {_quoted(target.database)}"
                f"{on_cluster(settings.cluster)}"
            )
        elif not warehouse.database_exists():
            warehouse.close()
            raise DatabaseMissingError(
                f"database {target.database!r} does not exist in {target.describe()}: "
                "run `runner migrate` first"
            )
        client.database = target.database
        return warehouse

    @staticmethod
    def _open_client(settings: Settings, target: WarehouseTarget, url_password: str | None) -> Any:
        try:
            import clickhouse_connect
            from clickhouse_connect.driver import exceptions as ch
        except ImportError as exc:  # pragma: no cover - dependency is mandatory
            raise ConfigError(f"clickhouse-connect is not installed: {exc}") from None
        if target.embedded:
            try:
                import chdb  # noqa: F401
            except ImportError:
                raise ConfigError(
                    "the embedded engine needs chDB: pip install 'pipeline-runner[embedded]',"
                    " or set RUNNER_WAREHOUSE_URL to a ClickHouse server"
                ) from None
            from runner.warehouse.embedded import open_embedded

            return open_embedded(embedded_directory(target.path or Path()))
        try:
            _quiet_driver_logger()
            password = (
                settings.clickhouse_password.get_secret_value()
                if settings.clickhouse_password
                else url_password or ""
            )
            return clickhouse_connect.get_client(
                host=target.host,
                port=target.port,
                username=settings.clickhouse_user or target.username,
                password=password,
                secure=target.secure,
                verify=settings.tls_verify,
                ca_cert=str(settings.tls_ca_cert) if settings.tls_ca_cert else None,
                connect_timeout=settings.connect_timeout,
                send_receive_timeout=settings.query_timeout,
                autogenerate_session_id=False,
            )
        except ch.Error as exc:
            message = str(exc).splitlines()[0]
            refusal = _refusal(exc, message)
            if refusal is not None:  # retrying will not help: settings must change
                raise ConfigError(f"cannot connect to {target.describe()}: {refusal}") from None
            raise NotReadyError(f"cannot connect to {target.describe()}: {message}") from None

    @property
    def database(self) -> str:
        """The database pipelines write to."""
        return self.target.database

    def table(self, name: str) -> str:
        """Quoted ``database.table`` for a table name (qualified or not)."""
        return qualified_table(name, self.database)

    def database_exists(self) -> bool:
        """Whether the target database exists."""
        rows = self.query_rows(
            "SELECT count() FROM system.databases WHERE name = {db:String}",
            {"db": self.database},
        )
        return bool(rows[0][0])

    def _call(self, action: str, call: Callable[[], T], *, resend: bool = True) -> T:
        """Run ``call`` with errors translated; transient ones retried with backoff.

        A request whose answer was lost after it was sent may have run; it is sent again
        only when ``resend`` says that is harmless (a read, an idempotent statement, an
        insert carrying its deduplication token).  Otherwise it fails as
        :class:`OutcomeUnknownError` (exit 75): a second copy of an insert without a token
        would land twice.
        """
        from tenacity import (
            Retrying,
            retry_if_exception_type,
            retry_if_not_exception_type,
            stop_after_attempt,
            wait_exponential,
        )

        def attempt() -> T:
            try:
                return call()
            except Exception as exc:
                error = translate_error(exc, action)
                if isinstance(error, WarehouseUnavailableError) and not resend and answer_lost(exc):
                    raise OutcomeUnknownError(
                        f"{error.message}; it may have been applied, so it was not sent again"
                    ) from exc
                raise error from exc

        retrying = Retrying(
            retry=retry_if_exception_type(WarehouseUnavailableError)
            & retry_if_not_exception_type(OutcomeUnknownError),
            stop=stop_after_attempt(self.retry.attempts),
            wait=wait_exponential(multiplier=self.retry.base_wait, max=self.retry.max_wait),
            reraise=True,
            before_sleep=lambda state: _log_retry(action, state.attempt_number, state),
        )
        return retrying(attempt)

    def command(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        *,
        idempotent: bool | None = None,
    ) -> None:
        """Run a statement that returns no rows.

        ``idempotent`` says whether running it twice is harmless (default: judged from
        the statement, see :func:`safe_to_resend`); only then is it sent again after an
        answer was lost.
        """
        self._call(
            "statement failed",
            lambda: self._client.command(sql, parameters=parameters, settings=settings),
            resend=safe_to_resend(sql) if idempotent is None else idempotent,
        )

    def query_rows(
        self, sql: str, parameters: Mapping[str, Any] | None = None
    ) -> Sequence[Sequence[Any]]:
        """Run a small query and return its rows."""
        result = self._call(
            "query failed",
            lambda: self._client.query(sql, parameters=parameters),
            resend=safe_to_resend(sql),
        )
        return result.result_rows  # type: ignore[no-any-return]

    def query_arrow(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> pa.Table:
        """Run a query and return all of its result as one Arrow table (small results)."""
        return self._call(
            "query failed",
            lambda: self._client.query_arrow(sql, parameters=parameters, settings=settings),
            resend=safe_to_resend(sql),
        )

    @contextmanager
    def stream_arrow(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        max_rows: int = 65_536,
        settings: Mapping[str, Any] | None = None,
    ) -> Iterator[Iterator[pa.RecordBatch]]:
        """Stream a query's result as Arrow batches of at most about ``max_rows`` rows."""
        try:
            stream = self._client.query_arrow_stream(
                sql,
                parameters=parameters,
                settings={**(settings or {}), "max_block_size": max_rows},
            )
        except Exception as exc:
            raise translate_error(exc, "query failed") from exc
        with stream:
            yield _translated(stream, max_rows)

    def insert_arrow(
        self,
        table: str,
        data: pa.RecordBatch | pa.Table,
        settings: Mapping[str, Any] | None = None,
        *,
        idempotent: bool | None = None,
    ) -> None:
        """Insert Arrow data into ``table`` (qualified or not).

        After a lost answer the insert is sent again only if ``idempotent`` (default:
        when it carries an ``insert_deduplication_token``, which the table must honour).
        On the embedded engine the data goes through a temporary Arrow IPC stream file
        written directly (see :meth:`_insert_from_file`).
        """
        import pyarrow as pa

        table_data = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
        database, _, name = table.rpartition(".")
        table_name = check_identifier(name, what="table")
        database_name = check_identifier(database or self.database, what="database")
        options = {str(k): v for k, v in (settings or {}).items()}
        if idempotent is None:
            idempotent = bool(options.get("insert_deduplication_token"))
        if self.target.embedded:
            target = f"{_quoted(database_name)}.`{table_name}`"
            # one block, so one part per insert, whatever the batch's size: a batch cut
            # into blocks would land as several parts, each deduplicated on its own
            options = {**_ONE_BLOCK, **options}
            clause = ", ".join(f"{_setting_name(k)} = {_literal(v)}" for k, v in options.items())
            self._call(
                f"insert into {table} failed",
                lambda: self._insert_from_file(target, table_data, clause),
            )
            return
        self._call(
            f"insert into {table} failed",
            lambda: self._client.insert_arrow(
                table_name, table_data, database=database_name, settings=options
            ),
            resend=idempotent,
        )

    def _insert_from_file(self, target: str, data: pa.Table, settings_clause: str) -> None:
        """``INSERT ... FROM INFILE`` of the batch written as an Arrow IPC stream.

        clickhouse-connect's chDB insert serialises the batch into an in-memory IPC
        file, copies that into bytes and writes them to a temporary file; writing the
        stream straight to the file saves two copies of every batch (inserts measured
        about 25% faster).  The engine converts the columns to the table's types exactly
        as with the Arrow format (a value that does not parse is an error).
        """
        import pyarrow as pa

        columns = ", ".join(_quoted_column(n) for n in data.column_names)
        settings = f" SETTINGS {settings_clause}" if settings_clause else ""
        handle, name = tempfile.mkstemp(prefix="runner-insert-", suffix=".arrows")
        os.close(handle)
        path = Path(name)
        try:
            with pa.OSFile(name, "wb") as sink, pa.ipc.new_stream(sink, data.schema) as writer:
                writer.write_table(data)
            self._client.command(
                f"INSERT INTO {target} ({columns}) FROM INFILE {_literal(name)}{settings} "
                "FORMAT ArrowStream"
            )
        finally:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        """Close the connection (the embedded engine stays open for the process)."""
        with suppress(Exception):  # closing must never mask the real outcome
            self._client.close()


def _quiet_driver_logger() -> None:
    """Keep clickhouse-connect's own warnings off stderr.

    Its HTTP transport logs a warning ("Unexpected Http Driver Exception") for every
    failed request; with no handler configured, Python prints such records on stderr,
    where they would break the CLI's one-line errors.  The framework reports the same
    failure itself (translated, in its JSON log), so a NullHandler drops them unless the
    application routes the standard logging somewhere.
    """
    driver = logging.getLogger("clickhouse_connect")
    if not driver.handlers:
        driver.addHandler(logging.NullHandler())


def _translated(stream: Iterator[pa.RecordBatch], max_rows: int) -> Iterator[pa.RecordBatch]:
    """Re-slice the engine's blocks (max_block_size is only a hint) and translate errors."""
    from runner.batches import split

    try:
        for block in stream:
            yield from split(block, max_rows)
    except Exception as exc:
        broken = _broken_off(stream, exc)
        if broken is not None:
            raise FatalError(f"query failed: {broken} ({exc})") from exc
        raise translate_error(exc, "query failed") from exc


def _broken_off(stream: Any, exc: Exception) -> str | None:
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


def _quoted(name: str) -> str:
    return f"`{check_identifier(name, what='database')}`"


_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Squash an embedded insert into a single block whatever its size (rows and bytes).
_ONE_BLOCK = {"min_insert_block_size_rows": 1 << 62, "min_insert_block_size_bytes": 1 << 62}


def _quoted_column(name: str) -> str:
    """Back-quote any column name (Arrow names are free text), escaping quotes."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _setting_name(name: str) -> str:
    if not _SETTING_NAME.fullmatch(name):
        raise ConfigError(f"invalid ClickHouse setting name {name!r}")
    return name


def _literal(value: Any) -> str:
    """A quoted SQL string (settings take it too: ClickHouse converts it to their type)."""
    text = str(int(value)) if isinstance(value, bool) else str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
