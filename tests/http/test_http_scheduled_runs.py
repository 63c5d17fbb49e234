"""Scheduled runs over HTTPS: a late Job's window, catch-up of missed windows once each, and
a retried Job adding nothing, through the production warehouse path."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.http
PIPELINE = """
from datetime import timedelta
from runner import clickhouse_append, el


def extract(ctx):
    ts = ctx.window.start
    while ts < ctx.window.end:
        yield [{"id": int(ts.timestamp()) // 60, "ts": ts}]
        ts += timedelta(minutes=10)


pipeline = el("ticks", schedule="0 * * * *", extract=extract, load=clickhouse_append("ticks"))
"""
MIGRATION = (
    "CREATE TABLE {{database}}.ticks (id UInt64, ts DateTime64(3, 'UTC')) ENGINE = MergeTree "
    "ORDER BY id SETTINGS non_replicated_deduplication_window = 1000;"
)
CRONJOB = "pipelines-pipeline-runner-ticks"


def job(hour: int) -> dict[str, str]:
    scheduled = datetime(2026, 1, 5, hour, tzinfo=UTC)
    return {
        "RUNNER_TRIGGER": "schedule",
        "RUNNER_CRONJOB_NAME": CRONJOB,
        "RUNNER_JOB_NAME": f"{CRONJOB}-{int(scheduled.timestamp()) // 60}",
    }


@pytest.mark.slow
def test_late_missed_and_retried_jobs_over_https(http_project):
    project = http_project(
        pipelines={"ticks_pipeline.py": PIPELINE}, migrations={"0001_ticks.sql": MIGRATION}
    )
    project.runner("migrate")
    project.runner("run", "ticks", **job(11))  # months late: still 10:00-11:00
    project.runner("run", "ticks", **job(15))  # 11:00, 12:00, 13:00 caught up first
    project.runner("run", "ticks", **job(11))  # a retry of the first Job: nothing lands
    runs = project.rows(
        f"SELECT toHour(window_start), trigger, status FROM {project.state_database}.runs "
        "FINAL ORDER BY started_at"
    )
    assert runs == [
        (10, "schedule", "succeeded"),
        (11, "catchup", "succeeded"),
        (12, "catchup", "succeeded"),
        (13, "catchup", "succeeded"),
        (14, "schedule", "succeeded"),
    ]
    per_hour = project.rows("SELECT toHour(ts), count() FROM ticks GROUP BY 1 ORDER BY 1")
    assert per_hour == [(hour, 6) for hour in range(10, 15)]
