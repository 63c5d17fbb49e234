"""Planning and applying migrations: status per file, resume per statement, repair, resolve.

A file is *applied* when its completion row is recorded with the file's checksum;
*partial* when some of its statements are recorded, or its last statement's run was cut
off (the next run settles it and goes on); *unresolved* when a statement's run was cut off
and only the operator can say whether it took effect; *changed* when the file differs
from what was applied; *pending* otherwise.

Every statement's run is recorded before it is sent (see :mod:`runner.migrate.history`),
so a kill at any point leaves either a finished statement, a rejected one (run again
after the fix), or one of unknown outcome.  The unknown one is settled by its kind (see
:mod:`runner.migrate.kinds`): run again when that is harmless, looked up in the system
tables when its effect can be seen, and otherwise left to ``runner migrate resolve``.
A statement is never run twice by guesswork.
"""

from __future__ import annotations

import copy
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.errors import ConfigError, PipelineError, RetriableError
from runner.migrate.files import MigrationFile, Statement, discover
from runner.migrate.history import History
from runner.migrate.kinds import Safety, StatementKind, classify
from runner.migrate.status import REPAIR_HINT, FileState, FileStatus, file_status
from runner.migrate.verify import Outcome, verify
from runner.signals import shielded
from runner.warehouse.client import RetryPolicy
from runner.warehouse.sql import on_cluster, quote_identifier

__all__ = [
    "REPAIR_HINT",
    "Applied",
    "FileState",
    "FileStatus",
    "Migrator",
    "file_status",
]

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from runner.warehouse.client import Warehouse


@dataclass(frozen=True)
class Applied:
    """A file this call applied (wholly or the rest of it)."""

    version: int
    name: str
    statements: int
    resumed_at: int
    seconds: float


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
        # Statements that must not run twice are sent once: a timeout may hide a success.
        self._once = copy.copy(warehouse)
        self._once.retry = RetryPolicy(attempts=1)

    def placeholders(self) -> dict[str, str]:
        """Values for ``{{database}}``, ``{{on_cluster}}`` and ``{{cluster}}``."""
        return {
            "database": quote_identifier(self.warehouse.database, what="database"),
            "on_cluster": on_cluster(self.cluster).strip(),
            "cluster": self.cluster or "",
        }

    def status(self) -> list[FileStatus]:
        """Every file's state, plus versions recorded but missing from disk.

        A statement whose run was cut off is looked up here (read-only), so the state
        says whether the next ``runner migrate`` can settle it by itself.
        """
        records = self.history.read()
        files = discover(self.directory)
        statuses = [file_status(f, records.get(f.version)) for f in files]
        for status in statuses:
            if status.in_doubt and status.state is FileState.PARTIAL:
                self._judge(status)
        on_disk = {f.version for f in files}
        statuses += [
            FileStatus(
                version=v, name=r.name, state=FileState.MISSING, recorded_checksum=r.checksum
            )
            for v, r in sorted(records.items())
            if v not in on_disk
        ]
        return sorted(statuses, key=lambda s: s.version)

    def _judge(self, status: FileStatus) -> None:
        """Decide how the cut-off statement of ``status`` will be settled, or that it can't."""
        migration = status.migration
        assert migration is not None  # noqa: S101 - files on disk only
        number = status.resume_at
        raw = migration.raw_statements[number - 1]
        statement = self.rendered(status)[0]
        kind = classify(statement.sql)
        if any(a.statement_checksum != raw.checksum for a in status.in_doubt):
            self._unresolved(status, kind, "the file's statement changed since that run")
            return
        if kind.safety is Safety.RERUN:
            status.settlement = Outcome.NOT_DONE
            return
        if kind.safety is Safety.CHECK:
            verdict = verify(self.warehouse, kind.effects)
            if verdict.outcome is not Outcome.UNCLEAR:
                status.settlement = verdict.outcome
                return
            self._unresolved(status, kind, f"the lookup is not conclusive: {verdict.found}")
            return
        self._unresolved(status, kind, f"check {kind.check_hint}")

    def _unresolved(self, status: FileStatus, kind: StatementKind, what: str) -> None:
        migration = status.migration
        assert migration is not None  # noqa: S101 - files on disk only
        number = status.resume_at
        line = migration.raw_statements[number - 1].line
        last = max(status.in_doubt, key=lambda a: a.started_at)
        status.state = FileState.UNRESOLVED
        status.problem = (
            f"{migration.path}:{line}: statement {number} of {status.statements} "
            f"({kind.label}) was started by {last.applied_by} at "
            f"{last.started_at:%Y-%m-%dT%H:%M:%S}Z and never recorded as finished (the "
            "migrator was killed or lost its connection), so it may or may not have taken "
            f"effect, and it is not run again by itself; {what}, then run "
            f"`runner migrate resolve {migration.version} {number} --done` if it took effect, "
            "or `--not-done` to have `runner migrate` run it"
        )

    def plan(self, to: int | None = None) -> list[FileStatus]:
        """Files to apply (pending or partial, up to ``to``); refuses changed files."""
        statuses = [s for s in self.status() if to is None or s.version <= to]
        blocked = [s for s in statuses if s.state in (FileState.CHANGED, FileState.UNRESOLVED)]
        if blocked:
            raise ConfigError(str(blocked[0].problem))
        return [s for s in statuses if s.state in (FileState.PENDING, FileState.PARTIAL)]

    def rendered(self, status: FileStatus) -> list[Statement]:
        """The statements still to run for ``status``, placeholders filled."""
        assert status.migration is not None  # noqa: S101 - plan() only returns files on disk
        return status.migration.statements(self.placeholders())[status.applied_statements :]

    def apply(
        self, to: int | None = None, on_applied: Callable[[Applied], None] | None = None
    ) -> list[Applied]:
        """Apply the plan, recording each statement's run before and after it.

        ``on_applied`` hears of each file as soon as it is done (progress for the log).
        """
        self.history.ensure()
        applied = []
        for status in self.plan(to):
            applied.append(self._apply_file(status))
            if on_applied is not None:
                on_applied(applied[-1])
        return applied

    def _apply_file(self, status: FileStatus) -> Applied:
        migration = status.migration
        assert migration is not None  # noqa: S101 - plan() only returns files on disk
        started = time.monotonic()
        raw = migration.raw_statements
        ran = 0
        for offset, statement in enumerate(self.rendered(status)):
            number = status.resume_at + offset
            checksum = raw[number - 1].checksum
            if (
                offset == 0
                and status.in_doubt
                and self._settle(migration, number, checksum, status)
            ):
                continue
            # SIGTERM waits for the statement and its history rows: never one without the other
            with shielded():
                self._run(migration, number, statement, classify(statement.sql))
            ran += 1
        self._record(migration, 0, "", "complete", started)
        return Applied(
            migration.version, migration.name, ran, status.resume_at, time.monotonic() - started
        )

    def _settle(
        self, migration: MigrationFile, number: int, checksum: str, status: FileStatus
    ) -> bool:
        """Close the cut-off runs of statement ``number``; True when it took effect."""
        if status.settlement is None:  # plan() refuses these; a guard, not a path
            raise ConfigError(str(status.problem))
        done = status.settlement is Outcome.DONE
        kind = "verified-done" if done else "verified-not-done"
        if classify(self.rendered(status)[0].sql).safety is Safety.RERUN:
            kind = "superseded"
        for attempt in status.in_doubt:
            self._record(
                migration, number, checksum, kind, time.monotonic(), attempt=attempt.attempt
            )
        return done

    def _run(
        self, migration: MigrationFile, number: int, statement: Statement, kind: StatementKind
    ) -> None:
        """Record the start, send the statement, record how it ended."""
        raw = migration.raw_statements
        checksum = raw[number - 1].checksum
        attempt = uuid.uuid4().hex
        self._record(migration, number, checksum, "started", time.monotonic(), attempt=attempt)
        began = time.monotonic()
        warehouse = self.warehouse if kind.safety is Safety.RERUN else self._once
        where = f"{migration.path}:{statement.line}: statement {number} of {len(raw)}"
        try:
            warehouse.command(statement.sql)
        except PipelineError as exc:
            if isinstance(exc, RetriableError) or kind.partial_on_error:
                raise type(exc)(
                    f"{where} ({kind.label}) failed: {exc.message}; it may have taken effect "
                    "in part or whole, so the next `runner migrate` settles it first "
                    f"({_settling(kind)})"
                ) from exc
            self._record(migration, number, checksum, "failed", began, attempt=attempt)
            raise type(exc)(
                f"{where} failed: {exc.message}; statements before it are recorded and the "
                f"next run resumes at statement {number}"
            ) from exc
        self._record(migration, number, checksum, "statement", began, attempt=attempt)

    def _record(
        self,
        migration: MigrationFile,
        statement: int,
        checksum: str,
        kind: str,
        began: float,
        *,
        attempt: str = "",
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
            attempt=attempt,
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

    def resolve(self, version: int, statement: int, *, done: bool) -> FileStatus:
        """The operator's word on a statement of unknown outcome: it took effect, or not."""
        self.history.ensure()
        status = next((s for s in self.status() if s.version == version), None)
        if status is None or status.migration is None:
            raise ConfigError(f"no migration file with version {version} in {self.directory}")
        migration = status.migration
        if not status.in_doubt or statement != status.resume_at:
            doubtful = f"statement {status.resume_at}" if status.in_doubt else "none"
            raise ConfigError(
                f"{migration.path}: statement {statement} has no run of unknown outcome to "
                f"resolve (in doubt: {doubtful}; state {status.state.value})"
            )
        checksum = migration.raw_statements[statement - 1].checksum
        kind = "resolved-done" if done else "resolved-not-done"
        for attempt in status.in_doubt:
            self._record(
                migration, statement, checksum, kind, time.monotonic(), attempt=attempt.attempt
            )
        return next(s for s in self.status() if s.version == version)


def _settling(kind: StatementKind) -> str:
    """How the next run settles a statement of this kind, in words."""
    if kind.safety is Safety.RERUN:
        return "running it again is harmless"
    if kind.safety is Safety.CHECK:
        return "by looking up its effect"
    return f"by asking you to check {kind.check_hint}"
