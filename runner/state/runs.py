"""Run history: one logical row per run in ``<state_database>.runs``.

The table is a ReplacingMergeTree keyed by (pipeline, run_id); every update (start,
heartbeat, finish) inserts a full row with a newer ``updated_at`` and reads use FINAL.
A run that died (SIGKILL, node loss) is found by :mod:`runner.state.liveness` (its free
liveness lock with file locks, else its stopped heartbeat), marked failed by the next run
of the same pipeline, and shown as lost by ``runner status`` meanwhile.  Error messages
are scrubbed of secrets on the way in and on the way out (rows written before the
scrubber existed included).
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runner.redaction import scrub, scrub_text
from runner.warehouse.sql import on_cluster, qualified_table, replacing_engine

if TYPE_CHECKING:
    from runner.pipeline.context import StepStats
    from runner.pipeline.windows import Window
    from runner.state.liveness import Liveness
    from runner.warehouse.client import Warehouse

TABLE = "runs"
COLUMNS = (
    "run_id",
    "pipeline",
    "trigger",
    "window_start",
    "window_end",
    "started_at",
    "finished_at",
    "heartbeat_at",
    "status",
    "rows_extracted",
    "rows_loaded",
    "rows_quarantined",
    "steps",
    "error_class",
    "error_message",
    "host",
    "image_version",
    "updated_at",
)


def runs_ddl(state_database: str, cluster: str | None, suffix: str = "") -> str:
    """The runs table (replicated on a cluster); ``suffix`` adds TTL and SETTINGS clauses."""
    table = qualified_table(f"{state_database}.{TABLE}", state_database)
    engine = replacing_engine(state_database, TABLE, cluster, "updated_at")
    return (
        f"CREATE TABLE IF NOT EXISTS {table}{on_cluster(cluster)} ("
        " run_id String, pipeline LowCardinality(String), trigger LowCardinality(String),"
        " window_start DateTime64(3, 'UTC'), window_end DateTime64(3, 'UTC'),"
        " started_at DateTime64(3, 'UTC'), finished_at Nullable(DateTime64(3, 'UTC')),"
        " heartbeat_at DateTime64(3, 'UTC'), status LowCardinality(String),"
        " rows_extracted UInt64, rows_loaded UInt64, rows_quarantined UInt64,"
        " steps String, error_class String, error_message String,"
        " host String, image_version String, updated_at DateTime64(3, 'UTC')"
        f") ENGINE = {engine} PARTITION BY toYYYYMM(started_at) ORDER BY (pipeline, run_id)"
        f"{suffix}"
    )


@dataclass
class RunRecord:
    """One run as stored."""

    run_id: str
    pipeline: str
    trigger: str
    window_start: datetime
    window_end: datetime
    started_at: datetime
    heartbeat_at: datetime
    status: str = "running"
    finished_at: datetime | None = None
    rows_extracted: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    steps: dict[str, Any] = field(default_factory=dict)
    error_class: str = ""
    error_message: str = ""
    host: str = ""
    image_version: str = ""

    @property
    def duration_seconds(self) -> float | None:
        """Wall time of a finished run."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        """For JSON output."""
        out = dict(self.__dict__)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        out["duration_seconds"] = self.duration_seconds
        return out


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return _as_utc(value)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class RunHistory:
    """Writes and reads run records; thread-safe for the heartbeat thread."""

    def __init__(self, warehouse: Warehouse, state_database: str) -> None:
        self.warehouse = warehouse
        self.table = qualified_table(f"{state_database}.{TABLE}", state_database)
        self._target = f"{state_database}.{TABLE}"
        self._lock = threading.Lock()

    def write(self, record: RunRecord) -> None:
        """Insert the record's current state."""
        import pyarrow as pa

        now = datetime.now(UTC)
        values: dict[str, Any] = {
            **{k: getattr(record, k) for k in COLUMNS if hasattr(record, k)},
            "steps": json.dumps(scrub(record.steps), default=str),
            "error_message": scrub_text(record.error_message),
            "updated_at": now,
        }
        ts = pa.timestamp("ms", "UTC")
        types = {
            "window_start": ts,
            "window_end": ts,
            "started_at": ts,
            "finished_at": ts,
            "heartbeat_at": ts,
            "updated_at": ts,
            "rows_extracted": pa.uint64(),
            "rows_loaded": pa.uint64(),
            "rows_quarantined": pa.uint64(),
        }
        batch = pa.RecordBatch.from_pydict(
            {k: pa.array([values[k]], types.get(k, pa.string())) for k in COLUMNS}
        )
        with self._lock:
            # a ReplacingMergeTree row: a second copy changes nothing
            self.warehouse.insert_arrow(self._target, batch, idempotent=True)

    def recent(self, pipeline: str | None = None, limit: int = 20) -> list[RunRecord]:
        """Newest runs first (of one pipeline, or of all)."""
        where = "WHERE pipeline = {p:String}" if pipeline else ""
        rows = self.warehouse.query_rows(
            f"SELECT {', '.join(COLUMNS[:-1])} FROM {self.table} FINAL {where} "
            "ORDER BY started_at DESC LIMIT {n:UInt32}",  # nosec B608
            {"p": pipeline or "", "n": limit},
        )
        return [self._record(row) for row in rows]

    def in_range(self, pipeline: str, start: datetime, end: datetime) -> list[RunRecord]:
        """Every run of ``pipeline`` whose window lies inside [start, end), oldest first."""
        rows = self.warehouse.query_rows(
            f"SELECT {', '.join(COLUMNS[:-1])} FROM {self.table} FINAL "  # nosec B608
            "WHERE pipeline = {p:String} AND window_start >= {s:DateTime64(3, 'UTC')} "
            "AND window_end <= {e:DateTime64(3, 'UTC')} ORDER BY started_at",
            {"p": pipeline, "s": start, "e": end},
        )
        return [self._record(row) for row in rows]

    def succeeded_windows(
        self, pipeline: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]]:
        """Windows of succeeded runs of ``pipeline`` that overlap [start, end), oldest first."""
        rows = self.warehouse.query_rows(
            f"SELECT DISTINCT window_start, window_end FROM {self.table} FINAL "  # nosec B608
            "WHERE pipeline = {p:String} AND status = 'succeeded' "
            "AND window_start < {e:DateTime64(3, 'UTC')} AND window_end > {s:DateTime64(3, 'UTC')} "
            "ORDER BY window_start, window_end",
            {"p": pipeline, "s": start, "e": end},
        )
        return [(_as_utc(row[0]), _as_utc(row[1])) for row in rows]

    def latest_success_end(self, pipeline: str, before: datetime) -> datetime | None:
        """The latest end of a succeeded window of ``pipeline`` starting before ``before``."""
        rows = self.warehouse.query_rows(
            f"SELECT window_end FROM {self.table} FINAL "  # nosec B608
            "WHERE pipeline = {p:String} AND status = 'succeeded' "
            "AND window_start < {b:DateTime64(3, 'UTC')} ORDER BY window_end DESC LIMIT 1",
            {"p": pipeline, "b": before},
        )
        return _as_utc(rows[0][0]) if rows else None

    def first_window_start(self, pipeline: str) -> datetime | None:
        """The earliest window start any run of ``pipeline`` recorded (None: it never ran)."""
        rows = self.warehouse.query_rows(
            f"SELECT window_start FROM {self.table} FINAL "  # nosec B608
            "WHERE pipeline = {p:String} ORDER BY window_start LIMIT 1",
            {"p": pipeline},
        )
        return _as_utc(rows[0][0]) if rows else None

    def has_succeeded(self, pipeline: str, window: Window) -> bool:
        """Whether a succeeded run of ``pipeline`` covered all of ``window``."""
        return any(
            start <= window.start and end >= window.end
            for start, end in self.succeeded_windows(pipeline, window.start, window.end)
        )

    def get(self, pipeline: str, run_id: str) -> RunRecord | None:
        """One run's latest record, or None when the history does not know it."""
        rows = self.warehouse.query_rows(
            f"SELECT {', '.join(COLUMNS[:-1])} FROM {self.table} FINAL "  # nosec B608
            "WHERE pipeline = {p:String} AND run_id = {r:String}",
            {"p": pipeline, "r": run_id},
        )
        return self._record(rows[0]) if rows else None

    def latest_per_pipeline(self) -> dict[str, RunRecord]:
        """The newest run of every pipeline."""
        rows = self.warehouse.query_rows(
            f"SELECT {', '.join(COLUMNS[:-1])} FROM {self.table} FINAL "
            "ORDER BY pipeline, started_at DESC LIMIT 1 BY pipeline"  # nosec B608
        )
        return {r.pipeline: r for r in (self._record(row) for row in rows)}

    def latest_finished(self, *, succeeded: bool = False) -> list[RunRecord]:
        """The newest finished run per pipeline and trigger (only succeeded ones if asked)."""
        where = "status = 'succeeded'" if succeeded else "status != 'running'"
        rows = self.warehouse.query_rows(
            f"SELECT {', '.join(COLUMNS[:-1])} FROM {self.table} FINAL WHERE {where} "  # nosec B608
            "ORDER BY pipeline, trigger, finished_at DESC LIMIT 1 BY pipeline, trigger"
        )
        return [self._record(row) for row in rows]

    def finished_counts(self) -> list[tuple[str, str, str, int]]:
        """(pipeline, trigger, status, runs) of every finished run in the history."""
        rows = self.warehouse.query_rows(
            f"SELECT pipeline, trigger, status, count() FROM {self.table} FINAL "  # nosec B608
            "WHERE status != 'running' GROUP BY pipeline, trigger, status "
            "ORDER BY pipeline, trigger, status"
        )
        return [(str(p), str(t), str(s), int(n)) for p, t, s, n in rows]

    @staticmethod
    def _record(row: Any) -> RunRecord:
        values = dict(zip(COLUMNS[:-1], row, strict=True))
        for key in ("window_start", "window_end", "started_at", "finished_at", "heartbeat_at"):
            values[key] = _utc(values[key])
        values["steps"] = json.loads(values["steps"] or "{}")
        values["error_message"] = scrub_text(values["error_message"])
        return RunRecord(**values)

    def mark_stale(
        self, pipeline: str, liveness: Callable[[RunRecord], Liveness]
    ) -> list[RunRecord]:
        """Mark runs of ``pipeline`` still 'running' that ``liveness`` finds dead as failed.

        A run judged dead is read again after the verdict and marked only if that read
        shows it unchanged: one that finished (or beat) meanwhile keeps its record.
        """
        stale = []
        for candidate in self.recent(pipeline, limit=100):
            if candidate.status != "running":
                continue
            verdict = liveness(candidate)
            if verdict.alive:
                continue
            record = self.get(pipeline, candidate.run_id)
            if (
                record is None
                or record.status != "running"
                or record.heartbeat_at != candidate.heartbeat_at
            ):
                continue
            record.status = "failed"
            record.finished_at = record.heartbeat_at
            record.error_class = "LostRun"
            record.error_message = verdict.reason
            self.write(record)
            stale.append(record)
        return stale


def new_record(
    *, run_id: str, pipeline: str, trigger: str, window: Window, image_version: str
) -> RunRecord:
    """A record for a run that is starting now."""
    now = datetime.now(UTC)
    return RunRecord(
        run_id=run_id,
        pipeline=pipeline,
        trigger=trigger,
        window_start=window.start,
        window_end=window.end,
        started_at=now,
        heartbeat_at=now,
        host=socket.gethostname(),
        image_version=image_version,
    )


def apply_stats(record: RunRecord, steps: dict[str, StepStats]) -> None:
    """Copy per-step statistics and their totals into the record."""
    record.steps = {name: stats.as_dict() for name, stats in steps.items()}
    record.rows_extracted = sum(s.rows_extracted for s in steps.values())
    record.rows_loaded = sum(s.rows_loaded for s in steps.values())
    record.rows_quarantined = sum(s.rows_quarantined for s in steps.values())
