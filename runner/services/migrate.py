"""``runner migrate``: bring the warehouse to the schema of this code, safely and repeatably.

Every entry point that writes takes the migration lock first — before it opens the
warehouse, because an embedded warehouse admits one process — so any number of hook Jobs,
pods or laptops can run it at once: one applies, the others wait and then find nothing to
do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runner.errors import NotReadyError, WarehouseBusyError
from runner.log import get_logger
from runner.migrate.apply import Applied, FileState, FileStatus, Migrator
from runner.migrate.files import head_version
from runner.migrate.framework import Retention, ensure_framework_tables
from runner.warehouse.client import Warehouse, parse_url

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.settings import Settings


@dataclass
class MigrationReport:
    """What ``migrate``/``status``/``repair`` found or did."""

    head: int
    current: int
    files: list[FileStatus] = field(default_factory=list)
    applied: list[Applied] = field(default_factory=list)
    rendered: dict[int, list[str]] = field(default_factory=dict)

    @property
    def at_head(self) -> bool:
        """Whether every file is applied unchanged."""
        return all(
            f.state is FileState.APPLIED for f in self.files if f.state is not FileState.MISSING
        )

    def as_dict(self) -> dict[str, Any]:
        """For ``--output json``."""
        return {
            "head": self.head,
            "current": self.current,
            "at_head": self.at_head,
            "files": [f.as_dict() for f in self.files],
        }


def connect_when_ready(settings: Settings, wait_seconds: float) -> Warehouse:
    """Connect (creating the target database), retrying with backoff up to ``wait_seconds``.

    The migration hook Job may start before or alongside ClickHouse; on a laptop a run
    may hold the embedded warehouse for a while.
    """
    if wait_seconds <= 0:
        return Warehouse.connect(settings, ensure_database=True)
    from tenacity import (
        Retrying,
        retry_if_exception_type,
        stop_after_delay,
        wait_exponential,
    )

    log = get_logger()
    retrying = Retrying(
        retry=retry_if_exception_type((NotReadyError, WarehouseBusyError)),
        stop=stop_after_delay(wait_seconds),
        wait=wait_exponential(multiplier=0.5, max=10),
        reraise=True,
        before_sleep=lambda state: log.warning(
            "warehouse not ready; retrying",
            attempt=state.attempt_number,
            error=str(state.outcome.exception()) if state.outcome else None,
        ),
    )
    return retrying(Warehouse.connect, settings, ensure_database=True)


def _with_migrator(
    settings: Settings,
    action: Callable[[Migrator], MigrationReport],
    *,
    wait_ready: float = 0.0,
    lock_wait: float = 0.0,
    locked: bool = True,
) -> MigrationReport:
    lock = None
    if locked:
        from runner.state.locks import make_lock

        target, _ = parse_url(settings.effective_warehouse_url, settings.database)
        # not per release: releases that share a database share its migration history
        lock = make_lock(settings, f"migrate:{target.database}", per_release=False)
        lock.acquire(wait_seconds=lock_wait)
    try:
        warehouse = connect_when_ready(settings, wait_ready)
        try:
            migrator = Migrator(
                warehouse,
                settings.migrations_path,
                state_database=settings.state_database,
                cluster=settings.cluster,
                applied_by=settings.holder_identity,
            )
            return action(migrator)
        finally:
            warehouse.close()
    finally:
        if lock is not None:
            lock.release()


def _report(migrator: Migrator, settings: Settings) -> MigrationReport:
    files = migrator.status()
    current = max((f.version for f in files if f.state is FileState.APPLIED), default=0)
    return MigrationReport(
        head=head_version(settings.migrations_path), current=current, files=files
    )


def migrate(
    settings: Settings,
    *,
    to: int | None = None,
    dry_run: bool = False,
    wait_ready: float = 0.0,
    lock_wait: float = 300.0,
) -> MigrationReport:
    """Apply pending migrations (up to ``to``); with ``dry_run`` only plan and render."""

    def action(migrator: Migrator) -> MigrationReport:
        log = get_logger(database=migrator.warehouse.database)
        if dry_run:
            report = _report(migrator, settings)
            for status in migrator.plan(to):
                report.rendered[status.version] = [s.sql for s in migrator.rendered(status)]
            return report
        ensure_framework_tables(
            migrator.warehouse,
            settings.state_database,
            settings.cluster,
            Retention(settings.runs_ttl_days, settings.quarantine_ttl_days),
        )

        def logged(item: Applied) -> None:
            log.info(
                "migration applied",
                version=item.version,
                name=item.name,
                statements=item.statements,
                resumed_at_statement=item.resumed_at if item.resumed_at > 1 else None,
                seconds=round(item.seconds, 3),
            )

        applied = migrator.apply(to, on_applied=logged)
        report = _report(migrator, settings)
        report.applied = applied
        log.info("migrations done", applied=len(applied), current=report.current, head=report.head)
        return report

    return _with_migrator(
        settings, action, wait_ready=wait_ready, lock_wait=lock_wait, locked=not dry_run
    )


def status(settings: Settings, *, wait_ready: float = 0.0) -> MigrationReport:
    """Each file's state against the history (no lock taken, nothing written).

    A statement started and not finished is cut off only if no migrator is at work: while
    one holds the lock (before or after the history is read) it may be running right now,
    and is shown partial, not unresolved.
    """
    from runner.state.locks import make_lock

    target, _ = parse_url(settings.effective_warehouse_url, settings.database)
    lock = make_lock(settings, f"migrate:{target.database}")
    busy_before = lock.holder()

    def action(migrator: Migrator) -> MigrationReport:
        report = _report(migrator, settings)
        doubtful = [f for f in report.files if f.in_doubt]
        holder = busy_before or (lock.holder() if doubtful else None)
        if holder is not None:
            for item in doubtful:
                item.state, item.problem = FileState.PARTIAL, None
                item.running = holder.identity
        return report

    return _with_migrator(settings, action, wait_ready=wait_ready, locked=False)


def repair(settings: Settings, *, lock_wait: float = 300.0) -> MigrationReport:
    """Record the current checksums of changed files as applied."""

    def action(migrator: Migrator) -> MigrationReport:
        log = get_logger(database=migrator.warehouse.database)
        repaired = migrator.repair()
        for item in repaired:
            log.warning(
                "migration checksum repaired",
                version=item.version,
                name=item.name,
                recorded=item.recorded_checksum,
                now=item.checksum,
            )
        return _report(migrator, settings)

    return _with_migrator(settings, action, lock_wait=lock_wait)


def resolve(
    settings: Settings, version: int, statement: int, *, done: bool, lock_wait: float = 300.0
) -> MigrationReport:
    """Record the operator's word on a statement of unknown outcome (see Migrator.resolve)."""

    def action(migrator: Migrator) -> MigrationReport:
        status = migrator.resolve(version, statement, done=done)
        get_logger(database=migrator.warehouse.database).warning(
            "migration statement resolved",
            version=version,
            statement=statement,
            took_effect=done,
            state=status.state.value,
        )
        return _report(migrator, settings)

    return _with_migrator(settings, action, lock_wait=lock_wait)
