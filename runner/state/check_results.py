"""Data check results, recorded with the run they belong to: ``<state_database>.check_results``.

One row per check and run (a ReplacingMergeTree, read with FINAL), written once when the
checks have run, before the run is recorded as succeeded or failed, so ``run_id`` joins
them to ``runs``.  Ordered by (pipeline, run_id, check): run ids sort by start time, so a
pipeline's latest results are one range.  Kept as long as the run history
(``RUNNER_RUNS_TTL_DAYS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runner.redaction import scrub_text
from runner.warehouse.sql import on_cluster, qualified_table, replacing_engine

if TYPE_CHECKING:
    from collections.abc import Sequence

    from runner.pipeline.windows import Window
    from runner.warehouse.client import Warehouse

TABLE = "check_results"
COLUMNS = (
    "pipeline",
    "run_id",
    "check",
    "kind",
    "target",
    "outcome",
    "on_fail",
    "rows",
    "detail",
    "window_start",
    "window_end",
    "checked_at",
)


def check_results_ddl(state_database: str, cluster: str | None, suffix: str = "") -> str:
    """The check results table; ``suffix`` adds TTL and SETTINGS clauses."""
    table = qualified_table(f"{state_database}.{TABLE}", state_database)
    engine = replacing_engine(state_database, TABLE, cluster, "checked_at")
    return (
        f"CREATE TABLE IF NOT EXISTS {table}{on_cluster(cluster)} ("
        " pipeline LowCardinality(String), run_id String, check String,"
        " kind LowCardinality(String), target String, outcome LowCardinality(String),"
        " on_fail LowCardinality(String), rows UInt64, detail String,"
        " window_start DateTime64(3, 'UTC'), window_end DateTime64(3, 'UTC'),"
        " checked_at DateTime64(3, 'UTC')"
        f") ENGINE = {engine} PARTITION BY toYYYYMM(checked_at)"
        f" ORDER BY (pipeline, run_id, check){suffix}"
    )


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome in one run: ``passed``, ``failed`` or ``warned``.

    ``rows`` is what the check counted: the offending rows (for ``unique``, the rows of
    duplicated keys), or the window's rows for ``row_count_between``.
    """

    check: str
    kind: str
    target: str
    outcome: str
    on_fail: str
    rows: int
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """For logs and JSON output."""
        return dict(self.__dict__)


class CheckResults:
    """Writes and reads the check results of one state database."""

    def __init__(self, warehouse: Warehouse, state_database: str) -> None:
        self.warehouse = warehouse
        self.table = qualified_table(f"{state_database}.{TABLE}", state_database)
        self._target = f"{state_database}.{TABLE}"

    def write(
        self, pipeline: str, run_id: str, window: Window, results: Sequence[CheckResult]
    ) -> None:
        """Record a run's results (one insert; nothing for no results)."""
        import pyarrow as pa

        if not results:
            return
        now = datetime.now(UTC)
        ts = pa.timestamp("ms", "UTC")
        n = len(results)
        columns: dict[str, pa.Array] = {
            "pipeline": pa.array([pipeline] * n, pa.string()),
            "run_id": pa.array([run_id] * n, pa.string()),
            "window_start": pa.array([window.start] * n, ts),
            "window_end": pa.array([window.end] * n, ts),
            "checked_at": pa.array([now] * n, ts),
            "rows": pa.array([r.rows for r in results], pa.uint64()),
            "detail": pa.array([scrub_text(r.detail) for r in results], pa.string()),
        }
        for name in ("check", "kind", "target", "outcome", "on_fail"):
            columns[name] = pa.array([getattr(r, name) for r in results], pa.string())
        batch = pa.RecordBatch.from_pydict({k: columns[k] for k in COLUMNS})
        # a ReplacingMergeTree keyed by (pipeline, run_id, check): a second copy changes nothing
        self.warehouse.insert_arrow(self._target, batch, idempotent=True)

    def of_run(self, pipeline: str, run_id: str) -> list[CheckResult]:
        """The results recorded for one run, by check name."""
        rows = self.warehouse.query_rows(
            "SELECT check, kind, target, outcome, on_fail, rows, detail "  # nosec B608
            f"FROM {self.table} FINAL WHERE pipeline = {{p:String}} AND run_id = {{r:String}} "
            "ORDER BY check",
            {"p": pipeline, "r": run_id},
        )
        return [
            CheckResult(str(c), str(k), str(t), str(o), str(f), int(n), scrub_text(str(d)))
            for c, k, t, o, f, n, d in rows
        ]
