"""Planning and applying migrations: status per file, resume per statement, repair.

A file is *applied* when its completion row is recorded with the file's checksum;
*partial* when some of its statements are recorded (a previous run failed at the next
one); *changed* when the file differs from what was applied; *pending* otherwise.  Applying
never re-runs a recorded statement, so a crash anywhere leaves nothing to force by hand.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError, PipelineError
from runner.migrate.files import MigrationFile, Statement, discover
from runner.migrate.history import FileRecord, History
from runner.signals import shielded
from runner.warehouse.sql import on_cluster, quote_identifier

if TYPE_CHECKING:
    from pathlib import Path

    from runner.warehouse.client import Warehouse

REPAIR_HINT = "restore the file, or run `runner migrate repair` if the change is intended"


class FileState(StrEnum):
    """Where one migration file stands against the history."""

    APPLIED = "applied"
    PARTIAL = "partial"
    PENDING = "pending"
    CHANGED = "changed"
    MISSING = "missing"  # recorded in the history, but no longer on disk


@dataclass
class FileStatus:
    """One line of ``runner migrate status``."""

    version: int
    name: str
    state: FileState
    statements: int = 0
    applied_statements: int = 0
    checksum: str | None = None
    recorded_checksum: str | None = None
    problem: str | None = None
    migration: MigrationFile | None = None

    @property
    def resume_at(self) -> int:
        """The first statement still to run (1-based)."""
        return self.applied_statements + 1

    def as_dict(self) -> dict[str, Any]:
        """For ``--output json``."""
        return {
            "version": self.version,
            "name": self.name,
            "state": self.state.value,
            "statements": self.statements,
            "applied_statements": self.applied_statements,
            "checksum": self.checksum,
            "recorded_checksum": self.recorded_checksum,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class Applied:
    """A file this call applied (wholly or the rest of it)."""

    version: int
    name: str
    statements: int
    resumed_at: int
    seconds: float


def file_status(migration: MigrationFile, record: FileRecord | None) -> FileStatus:
    """Compare one file with its history."""
    raw = migration.raw_statements
    status = FileStatus(
        version=migration.version,
        name=migration.name,
        state=FileState.PENDING,
        statements=len(raw),
        checksum=migration.checksum,
        migration=migration,
    )
    if record is None:
        return status
    status.recorded_checksum = record.checksum
    if record.checksum is not None:
        status.applied_statements = len(raw)
        if record.checksum == migration.checksum:
            status.state = FileState.APPLIED
        else:
            status.state = FileState.CHANGED
            status.problem = (
                f"{migration.path}: changed after it was applied (recorded checksum "
                f"{record.checksum}, file now {migration.checksum}); {REPAIR_HINT}"
            )
        return status
    done = sorted(record.statements)
    status.applied_statements = len(done)
    status.state = FileState.PARTIAL
    if done != list(range(1, len(done) + 1)) or len(done) >= len(raw):
        status.state = FileState.CHANGED
        status.problem = (
            f"{migration.path}: the history records statements {done} but the file has "
            f"{len(raw)}; {REPAIR_HINT}"
        )
        return status
    for number in done:
        if record.statements[number] != raw[number - 1].checksum:
            status.state = FileState.CHANGED
            status.problem = (
                f"{migration.path}:{raw[number - 1].line}: statement {number} changed after it "
                f"was applied (recorded {record.statements[number]}, file now "
                f"{raw[number - 1].checksum}); {REPAIR_HINT}"
            )
            break
    return status


class Migrator:
    """Applies one migrations directory to one warehouse."""

    def __init__(
        self,
        warehouse: Warehouse,
        directory: Path,
        *,
        state_database: str,
        cluster: str | None = None,
        applied_by: str | None = None,
    ) -> None:
        self.warehouse = warehouse
        self.directory = directory
        self.cluster = cluster
        self.applied_by = applied_by
        self.history = History(warehouse, state_database, cluster)

    def placeholders(self) -> dict[str, str]:
        """Values for ``{{database}}``, ``{{on_cluster}}`` and ``{{cluster}}``."""
        return {
            "database": quote_identifier(self.warehouse.database, what="database"),
            "on_cluster": on_cluster(self.cluster).strip(),
            "cluster": self.cluster or "",
        }

    def status(self) -> list[FileStatus]:
        """Every file's state, plus versions recorded but missing from disk."""
        records = self.history.read()
        files = discover(self.directory)
        statuses = [file_status(f, records.get(f.version)) for f in files]
        on_disk = {f.version for f in files}
        statuses += [
            FileStatus(
                version=v, name=r.name, state=FileState.MISSING, recorded_checksum=r.checksum
            )
            for v, r in sorted(records.items())
            if v not in on_disk
        ]
        return sorted(statuses, key=lambda s: s.version)

    def plan(self, to: int | None = None) -> list[FileStatus]:
        """Files to apply (pending or partial, up to ``to``); refuses changed files."""
        statuses = [s for s in self.status() if to is None or s.version <= to]
        changed = [s for s in statuses if s.state is FileState.CHANGED]
        if changed:
            raise ConfigError(str(changed[0].problem))
        return [s for s in statuses if s.state in (FileState.PENDING, FileState.PARTIAL)]

    def rendered(self, status: FileStatus) -> list[Statement]:
        """The statements still to run for ``status``, placeholders filled."""
        assert status.migration is not None  # noqa: S101 - plan() only returns files on disk
        return status.migration.statements(self.placeholders())[status.applied_statements :]

    def apply(self, to: int | None = None) -> list[Applied]:
        """Apply the plan, recording each statement as it succeeds."""
        self.history.ensure()
        return [self._apply_file(status) for status in self.plan(to)]

    def _apply_file(self, status: FileStatus) -> Applied:
        migration = status.migration
        assert migration is not None  # noqa: S101 - plan() only returns files on disk
        started = time.monotonic()
        raw = migration.raw_statements
        for offset, statement in enumerate(self.rendered(status)):
            number = status.resume_at + offset
            began = time.monotonic()
            # SIGTERM waits for the statement and its history row: never one without the other
            with shielded():
                try:
                    self.warehouse.command(statement.sql)
                except PipelineError as exc:
                    raise type(exc)(
                        f"{migration.path}:{statement.line}: statement {number} of {len(raw)} "
                        f"failed: {exc.message}; statements before it are recorded and the "
                        f"next run resumes at statement {number}"
                    ) from exc
                self._record(migration, number, raw[number - 1].checksum, "statement", began)
        self._record(migration, 0, "", "complete", started)
        return Applied(
            migration.version,
            migration.name,
            len(raw) - status.applied_statements,
            status.resume_at,
            time.monotonic() - started,
        )

    def _record(
        self, migration: MigrationFile, statement: int, checksum: str, kind: str, began: float
    ) -> None:
        self.history.record(
            version=migration.version,
            name=migration.name,
            checksum=migration.checksum,
            statement=statement,
            statements=len(migration.raw_statements),
            statement_checksum=checksum,
            kind=kind,
            duration_ms=int((time.monotonic() - began) * 1000),
            applied_by=self.applied_by,
        )

    def repair(self) -> list[FileStatus]:
        """Accept the current text of changed files as what was applied."""
        self.history.ensure()
        repaired = [s for s in self.status() if s.state is FileState.CHANGED]
        for status in repaired:
            migration = status.migration
            assert migration is not None  # noqa: S101 - CHANGED is only set for files on disk
            raw = migration.raw_statements
            if status.recorded_checksum is not None or status.applied_statements >= len(raw):
                self._record(migration, 0, "", "repair", time.monotonic())
                continue
            for number in range(1, min(status.applied_statements, len(raw)) + 1):
                self._record(
                    migration, number, raw[number - 1].checksum, "repair", time.monotonic()
                )
        return repaired
