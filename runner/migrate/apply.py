"""Applying pending migrations in order and recording each in a history table.

This is the minimal applier: whole files, in version order, a checksum check for files
already applied.  Statement-level resume, locking and cluster replication build on it.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.errors import ConfigError, PipelineError
from runner.migrate.files import MigrationFile, discover

if TYPE_CHECKING:
    from pathlib import Path

    from runner.warehouse.client import Warehouse

HISTORY_TABLE = "_migrations"


@dataclass(frozen=True)
class Applied:
    """A migration this call applied."""

    version: int
    name: str
    statements: int
    seconds: float


def _ensure_history(warehouse: Warehouse) -> None:
    warehouse.command(
        f"CREATE TABLE IF NOT EXISTS {warehouse.table(HISTORY_TABLE)} ("
        " version UInt32, name String, checksum String, statements UInt32,"
        " applied_at DateTime64(3, 'UTC'), duration_ms UInt64, applied_by String"
        ") ENGINE = MergeTree ORDER BY version"
    )


def applied_checksums(warehouse: Warehouse) -> dict[int, str]:
    """Version → checksum of every recorded migration."""
    _ensure_history(warehouse)
    rows = warehouse.query_rows(
        f"SELECT version, argMax(checksum, applied_at) FROM {warehouse.table(HISTORY_TABLE)} "
        "GROUP BY version"
    )
    return {int(v): str(c) for v, c in rows}


def placeholders(warehouse: Warehouse) -> dict[str, str]:
    """Values for the placeholders migration files may use."""
    return {"database": f"`{warehouse.database}`", "on_cluster": ""}


def apply_pending(warehouse: Warehouse, directory: Path) -> list[Applied]:
    """Apply every migration of ``directory`` not yet recorded; refuse edited ones."""
    files = discover(directory)
    done = applied_checksums(warehouse)
    for migration in files:
        recorded = done.get(migration.version)
        if recorded is not None and recorded != migration.checksum:
            raise ConfigError(
                f"{migration.path}: changed after it was applied "
                f"(recorded checksum {recorded[:12]}, file now {migration.checksum[:12]})"
            )
    return [_apply(warehouse, m) for m in files if m.version not in done]


def _apply(warehouse: Warehouse, migration: MigrationFile) -> Applied:
    started = time.monotonic()
    statements = migration.statements(placeholders(warehouse))
    for number, statement in enumerate(statements, start=1):
        try:
            warehouse.command(statement.sql)
        except PipelineError as exc:
            raise type(exc)(
                f"{migration.path}:{statement.line}: statement {number} failed: {exc.message}"
            ) from exc
    seconds = time.monotonic() - started
    warehouse.command(
        f"INSERT INTO {warehouse.table(HISTORY_TABLE)} VALUES "
        "({v:UInt32}, {n:String}, {c:String}, {s:UInt32}, now64(3), {d:UInt64}, {by:String})",
        {
            "v": migration.version,
            "n": migration.name,
            "c": migration.checksum,
            "s": len(statements),
            "d": int(seconds * 1000),
            "by": socket.gethostname(),
        },
    )
    return Applied(migration.version, migration.name, len(statements), seconds)
