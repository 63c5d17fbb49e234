"""The one warehouse client: clickhouse-connect over HTTP(S), or over embedded chDB.

The URL decides the engine (``chdb:///abs/path`` or ``http(s)://user@host:port/db``); the
rest of the framework sees the same :class:`Warehouse` either way.  ClickHouse errors are
translated into the framework's fatal/retriable split, once, by
:mod:`runner.warehouse.failures`; the URL is parsed by :mod:`runner.warehouse.target`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from runner.batches import split
from runner.errors import (
    ConfigError,
    DatabaseMissingError,
    FatalError,
    NotReadyError,
    OutcomeUnknownError,
    WarehouseUnavailableError,
)
from runner.warehouse.failures import (
    answer_lost,
    broken_off,
    refusal,
    safe_to_resend,
    translate_error,
)
from runner.warehouse.sql import (
    check_identifier,
    on_cluster,
    qualified_table,
    quoted_column,
    setting_name,
    string_literal,
)
from runner.warehouse.target import (
    DEFAULT_DATABASE,
    WarehouseTarget,
    embedded_directory,
    parse_url,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.settings import Settings

T = TypeVar("T")

__all__ = [
    "DEFAULT_DATABASE",
    "RetryPolicy",
    "Warehouse",
    "WarehouseTarget",
    "answer_lost",
    "embedded_directory",
    "parse_url",
    "safe_to_resend",
    "translate_error",
]
# Squash an embedded insert into a single block whatever its size (rows and bytes).
_ONE_BLOCK = {"min_insert_block_size_rows": 1 << 62, "min_insert_block_size_bytes": 1 << 62}


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
            refused = refusal(exc, message)
            if refused is not None:  # retrying will not help: settings must change
                raise ConfigError(f"cannot connect to {target.describe()}: {refused}") from None
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
            clause = ", ".join(
                f"{setting_name(k)} = {string_literal(v)}" for k, v in options.items()
            )
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

        columns = ", ".join(quoted_column(n) for n in data.column_names)
        settings = f" SETTINGS {settings_clause}" if settings_clause else ""
        handle, name = tempfile.mkstemp(prefix="runner-insert-", suffix=".arrows")
        os.close(handle)
        path = Path(name)
        try:
            with pa.OSFile(name, "wb") as sink, pa.ipc.new_stream(sink, data.schema) as writer:
                writer.write_table(data)
            self._client.command(
                f"INSERT INTO {target} ({columns}) FROM INFILE {string_literal(name)}{settings} "
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
    try:
        for block in stream:
            yield from split(block, max_rows)
    except Exception as exc:
        broken = broken_off(stream, exc)
        if broken is not None:
            raise FatalError(f"query failed: {broken} ({exc})") from exc
        raise translate_error(exc, "query failed") from exc


def _quoted(name: str) -> str:
    return f"`{check_identifier(name, what='database')}`"
