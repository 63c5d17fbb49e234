"""Where each migration file stands against the history: ``runner migrate status``.

Part of :mod:`runner.migrate.apply` (which re-exports these names): comparing a file with
its recorded checksums, without looking at the database.  The states are described in
that module's docstring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.migrate.files import MigrationFile
    from runner.migrate.history import FileRecord, OpenAttempt
    from runner.migrate.verify import Outcome

__all__ = ["REPAIR_HINT", "FileState", "FileStatus", "file_status"]

REPAIR_HINT = "restore the file, or run `runner migrate repair` if the change is intended"


class FileState(StrEnum):
    """Where one migration file stands against the history."""

    APPLIED = "applied"
    PARTIAL = "partial"
    PENDING = "pending"
    CHANGED = "changed"
    UNRESOLVED = "unresolved"  # a statement's outcome is unknown; `migrate resolve` settles it
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
    # runs of statement ``resume_at`` that were started and never finished
    in_doubt: list[OpenAttempt] = field(default_factory=list)
    settlement: Outcome | None = None  # what the lookup found for them, when it could
    running: str | None = None  # the migrator at work meanwhile (status only)

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
            "in_doubt_statement": self.resume_at if self.in_doubt else None,
            "running_by": self.running,
        }


def file_status(migration: MigrationFile, record: FileRecord | None) -> FileStatus:
    """Compare one file with its history (without looking at the database)."""
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
    doubtful = sorted(record.open_attempts)
    if (
        done != list(range(1, len(done) + 1))
        or len(done) > len(raw)
        or doubtful not in ([], [len(done) + 1])
        or (doubtful and doubtful[0] > len(raw))
    ):
        status.state = FileState.CHANGED
        status.problem = (
            f"{migration.path}: the history records statements {done}"
            f"{f' and runs of {doubtful} cut off' if doubtful else ''} but the file has "
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
            return status
    if doubtful:
        status.in_doubt = record.open_attempts[doubtful[0]]
    return status
