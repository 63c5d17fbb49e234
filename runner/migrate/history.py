"""The migration history table: rows for each statement's runs, one per finished file.

Recording every statement is what makes a failed migration resumable instead of "dirty":
after statement k fails, statements 1..k-1 are on record and the next run starts at k.

Each run of a statement is an *attempt* with its own id: a ``started`` row is written
before the statement is sent, and a row with the same attempt id after it (``statement``
when it succeeded, ``failed`` when ClickHouse rejected it).  An attempt without an
outcome row is one whose process died (or lost the connection) while the statement ran:
its outcome is unknown, and the migrator settles it before going on (see
:mod:`runner.migrate.apply`).  Pairing rows by attempt id, not by time, keeps the reading
right whatever the clocks of the machines that wrote them.

On a cluster the table is created ON CLUSTER as a ReplicatedMergeTree, so every replica
reads the same history.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from runner.errors import FatalError
from runner.warehouse.sql import on_cluster, qualified_table, quote_identifier

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner.warehouse.client import Warehouse

TABLE = "schema_migrations"
UNKNOWN_TABLE = "Code: 60."
UNKNOWN_DATABASE = "Code: 81."
UNKNOWN_IDENTIFIER = "Code: 47."

STARTED = "started"  # written before a statement is sent
# Kinds that record a statement as done; their attempt id (if any) closes that attempt.
DONE_KINDS = frozenset({"statement", "verified-done", "resolved-done", "repair"})
# Kinds that record an attempt as having had no effect: the statement is still to run.
NOT_DONE_KINDS = frozenset({"failed", "verified-not-done", "resolved-not-done", "superseded"})


def history_ddl(state_database: str, cluster: str | None) -> list[str]:
    """Statements creating the state database and the history table."""
    table = qualified_table(f"{state_database}.{TABLE}", state_database)
    if cluster:
        engine = (
            "ReplicatedMergeTree("
            f"'/clickhouse/pipeline_runner/{state_database}/{TABLE}', '{{replica}}')"
        )
    else:
        engine = "MergeTree"
    return [
        f"CREATE DATABASE IF NOT EXISTS {quote_identifier(state_database)}{on_cluster(cluster)}",
        f"CREATE TABLE IF NOT EXISTS {table}{on_cluster(cluster)} ("
        " version UInt32, name String, checksum String,"
        " statement UInt32, statements UInt32, statement_checksum String,"
        " kind LowCardinality(String), applied_at DateTime64(3, 'UTC'),"
        " duration_ms UInt64, applied_by String, attempt String"
        f") ENGINE = {engine} ORDER BY (version, statement, applied_at)",
    ]


def attempt_column_ddl(state_database: str, cluster: str | None) -> str:
    """Adds the attempt column to a history table created before attempts were recorded."""
    table = qualified_table(f"{state_database}.{TABLE}", state_database)
    return f"ALTER TABLE {table}{on_cluster(cluster)} ADD COLUMN IF NOT EXISTS attempt String"


@dataclass(frozen=True)
class OpenAttempt:
    """A run of a statement that was started and never recorded as finished."""

    attempt: str
    statement_checksum: str
    applied_by: str
    started_at: datetime


@dataclass
class FileRecord:
    """What the history says about one migration version."""

    version: int
    name: str = ""
    checksum: str | None = None  # set once the whole file is recorded as applied
    statements: dict[int, str] = field(default_factory=dict)  # statement no. → checksum
    # statement no. → its runs of unknown outcome (only for statements not done)
    open_attempts: dict[int, list[OpenAttempt]] = field(default_factory=dict)


class History:
    """Reads and writes the history table of one state database."""

    def __init__(self, warehouse: Warehouse, state_database: str, cluster: str | None) -> None:
        self.warehouse = warehouse
        self.state_database = state_database
        self.cluster = cluster
        self.table = qualified_table(f"{state_database}.{TABLE}", state_database)

    def ensure(self) -> None:
        """Create the state database and the history table when missing."""
        for sql in history_ddl(self.state_database, self.cluster):
            self.warehouse.command(sql)
        if not self._has_attempt_column():
            self.warehouse.command(attempt_column_ddl(self.state_database, self.cluster))

    def _has_attempt_column(self) -> bool:
        rows = self.warehouse.query_rows(
            "SELECT count() FROM system.columns WHERE database = {db:String} "
            "AND table = {t:String} AND name = 'attempt'",
            {"db": self.state_database, "t": TABLE},
        )
        return bool(rows[0][0])

    def read(self) -> dict[int, FileRecord]:
        """Every recorded version; empty when the table does not exist yet."""
        try:
            rows = self._rows("attempt")
        except FatalError as exc:
            if UNKNOWN_TABLE in exc.message or UNKNOWN_DATABASE in exc.message:
                return {}
            if UNKNOWN_IDENTIFIER not in exc.message:
                raise
            rows = self._rows("''")  # a table from before attempts; `migrate` adds the column
        records: dict[int, FileRecord] = {}
        opened: dict[tuple[int, int], dict[str, OpenAttempt]] = {}
        for version, statement, name, checksum, statement_checksum, kind, attempt, by, at in rows:
            record = records.setdefault(int(version), FileRecord(int(version), str(name)))
            number = int(statement)
            if number == 0:
                record.checksum = str(checksum)
                continue
            attempts = opened.setdefault((record.version, number), {})
            if kind == STARTED:
                attempts[str(attempt)] = OpenAttempt(
                    str(attempt), str(statement_checksum), str(by), at
                )
                continue
            attempts.pop(str(attempt), None)
            if kind in DONE_KINDS:
                record.statements[number] = str(statement_checksum)
        for (version, number), attempts in opened.items():
            if attempts and number not in records[version].statements:
                records[version].open_attempts[number] = list(attempts.values())
        return records

    def _rows(self, attempt: str) -> Sequence[Sequence[Any]]:
        return self.warehouse.query_rows(
            "SELECT version, statement, name, checksum, statement_checksum, kind, "  # nosec B608
            f"{attempt}, applied_by, applied_at FROM {self.table} "
            "ORDER BY version, statement, applied_at"
        )

    def record(
        self,
        *,
        version: int,
        name: str,
        checksum: str,
        statement: int,
        statements: int,
        statement_checksum: str,
        kind: str,
        duration_ms: int,
        applied_by: str | None = None,
        attempt: str = "",
    ) -> None:
        """Append one history row (statement 0 marks the whole file)."""
        self.warehouse.command(
            f"INSERT INTO {self.table} (version, name, checksum, statement, statements, "
            "statement_checksum, kind, applied_at, duration_ms, applied_by, attempt) "
            "VALUES ({v:UInt32}, {n:String}, {c:String}, {s:UInt32}, {total:UInt32}, "
            "{sc:String}, {k:String}, now64(3), {d:UInt64}, {by:String}, {a:String})",  # nosec B608
            {
                "v": version,
                "n": name,
                "c": checksum,
                "s": statement,
                "total": statements,
                "sc": statement_checksum,
                "k": kind,
                "d": duration_ms,
                "by": applied_by or socket.gethostname(),
                "a": attempt,
            },
            idempotent=True,  # a second copy of the row changes nothing: the latest wins
        )

    def current_version(self) -> int:
        """The highest version recorded as completely applied (0 for none)."""
        applied = [v for v, r in self.read().items() if r.checksum is not None]
        return max(applied, default=0)
