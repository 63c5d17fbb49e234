"""The migration history table: one row per applied statement, one per finished file.

Recording every statement is what makes a failed migration resumable instead of "dirty":
after statement k fails, statements 1..k-1 are on record and the next run starts at k.
On a cluster the table is created ON CLUSTER as a ReplicatedMergeTree, so every replica
reads the same history.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runner.errors import FatalError
from runner.warehouse.sql import on_cluster, qualified_table, quote_identifier

if TYPE_CHECKING:
    from runner.warehouse.client import Warehouse

TABLE = "schema_migrations"
UNKNOWN_TABLE = "Code: 60."
UNKNOWN_DATABASE = "Code: 81."


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
        " duration_ms UInt64, applied_by String"
        f") ENGINE = {engine} ORDER BY (version, statement, applied_at)",
    ]


@dataclass
class FileRecord:
    """What the history says about one migration version."""

    version: int
    name: str = ""
    checksum: str | None = None  # set once the whole file is recorded as applied
    statements: dict[int, str] = field(default_factory=dict)  # statement no. → checksum


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

    def read(self) -> dict[int, FileRecord]:
        """Every recorded version; empty when the table does not exist yet."""
        try:
            rows = self.warehouse.query_rows(
                f"SELECT version, statement, argMax(name, applied_at), "  # nosec B608
                f"argMax(checksum, applied_at), argMax(statement_checksum, applied_at) "
                f"FROM {self.table} GROUP BY version, statement ORDER BY version, statement"
            )
        except FatalError as exc:
            if UNKNOWN_TABLE in exc.message or UNKNOWN_DATABASE in exc.message:
                return {}
            raise
        records: dict[int, FileRecord] = {}
        for version, statement, name, checksum, statement_checksum in rows:
            record = records.setdefault(int(version), FileRecord(int(version), str(name)))
            if int(statement) == 0:
                record.checksum = str(checksum)
            else:
                record.statements[int(statement)] = str(statement_checksum)
        return records

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
    ) -> None:
        """Append one history row (statement 0 marks the whole file)."""
        self.warehouse.command(
            f"INSERT INTO {self.table} VALUES ({{v:UInt32}}, {{n:String}}, {{c:String}}, "
            "{s:UInt32}, {total:UInt32}, {sc:String}, {k:String}, now64(3), {d:UInt64}, "
            "{by:String})",  # nosec B608
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
            },
            idempotent=True,  # a second copy of the row changes nothing: the latest wins
        )

    def current_version(self) -> int:
        """The highest version recorded as completely applied (0 for none)."""
        applied = [v for v, r in self.read().items() if r.checksum is not None]
        return max(applied, default=0)
