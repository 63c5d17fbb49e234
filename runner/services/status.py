"""``runner status`` and ``runner health``: what ran, and whether the data is fresh."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from runner.redaction import scrub_text
from runner.services.table_health import (
    TableCount,
    pipeline_tables,
    table_count,
    volume_problem,
)
from runner.state.runs import RunHistory, RunRecord
from runner.warehouse.client import Warehouse

if TYPE_CHECKING:
    from runner.pipeline.discovery import Registry
    from runner.settings import Settings


def shown_status(settings: Settings, record: RunRecord) -> str:
    """A 'running' run that is not alive (see runner.state.liveness) is shown as lost."""
    from runner.state.liveness import is_run_alive

    if record.status == "running" and not is_run_alive(settings, record):
        return "lost"
    return record.status


def recent_runs(settings: Settings, pipeline: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest runs, as plain data with the displayed status."""
    warehouse = Warehouse.connect(settings)
    try:
        records = RunHistory(warehouse, settings.state_database).recent(pipeline, limit)
    finally:
        warehouse.close()
    return [{**r.as_dict(), "status": shown_status(settings, r)} for r in records]


@dataclass
class Check:
    """One health check and its outcome."""

    pipeline: str
    check: str
    healthy: bool
    detail: str

    def __post_init__(self) -> None:
        # the detail is often an error echoing a URL or a server's answer: no secrets
        self.detail = scrub_text(self.detail)


@dataclass
class HealthReport:
    """Every check; healthy when all pass."""

    checks: list[Check] = field(default_factory=list)
    tables: list[TableCount] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """Whether every check passed."""
        return all(c.healthy for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """For ``--output json``."""
        return {
            "healthy": self.healthy,
            "checks": [c.__dict__ for c in self.checks],
            "tables": [t.as_dict() for t in self.tables],
        }


def health(settings: Settings, registry: Registry) -> HealthReport:
    """Last run of every pipeline, rows per window, its tables and declared freshness."""
    report = HealthReport()
    pipelines, failures = registry.load_all()
    for failure in failures:
        report.checks.append(Check(failure.name, "definition", False, str(failure.error)))
    warehouse = Warehouse.connect(settings)
    try:
        history = RunHistory(warehouse, settings.state_database)
        latest = history.latest_per_pipeline()
        for pipeline in pipelines:
            record = latest.get(pipeline.name)
            if record is None:
                report.checks.append(Check(pipeline.name, "last_run", True, "never ran"))
            else:
                status = shown_status(settings, record)
                detail = f"{status} at {record.started_at.isoformat()}"
                if record.error_message:
                    detail += f": {record.error_message}"
                report.checks.append(
                    Check(pipeline.name, "last_run", status in {"succeeded", "running"}, detail)
                )
            volume = volume_problem(pipeline, history)
            if volume is not None:
                report.checks.append(Check(pipeline.name, "volume", *volume))
            for expectation in pipeline.spec.freshness:
                report.checks.append(_freshness(warehouse, pipeline.name, expectation))
            for table, column in pipeline_tables(pipeline).items():
                report.tables.append(table_count(warehouse, pipeline.name, table, column))
    finally:
        warehouse.close()
    return report


def _freshness(warehouse: Warehouse, pipeline: str, expectation: Any) -> Check:
    from runner.errors import RunnerError

    name = f"freshness:{expectation.table}"
    table = warehouse.table(expectation.table)
    column = f"`{expectation.column}`"
    try:
        rows, newest = warehouse.query_rows(
            f"SELECT count(), toUnixTimestamp64Milli(toDateTime64(max({column}), 3, 'UTC')) "
            f"FROM {table}"  # nosec B608
        )[0]
    except RunnerError as exc:
        return Check(pipeline, name, False, str(exc))
    problems = []
    if rows < expectation.min_rows:
        problems.append(f"{rows} rows, expected at least {expectation.min_rows}")
    age = None
    if rows and newest is not None:
        age = datetime.now(UTC) - datetime.fromtimestamp(newest / 1000, UTC)
    if expectation.max_age_seconds is not None and (
        age is None or age > timedelta(seconds=expectation.max_age_seconds)
    ):
        problems.append(
            f"newest {expectation.column} is {_human(age)} old, "
            f"expected at most {_human(timedelta(seconds=expectation.max_age_seconds))}"
        )
    detail = "; ".join(problems) or f"{rows} rows, newest {_human(age)} old"
    return Check(pipeline, name, not problems, detail)


def _human(age: timedelta | None) -> str:
    if age is None:
        return "unknown"
    seconds = int(age.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
