"""Attacks on where a scheduled run's window comes from and on its catch-up, through real
`runner` processes: forged or broken Job names and scheduled times end in one line and
exit 3 with nothing recorded; a hand-named Job is never taken as scheduled; a pod killed
in the middle of catching up leaves no window loaded twice or skipped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a `runner` process per forged time; a pod killed mid-catch-up

PIPELINE = """
    import os
    import time
    from datetime import timedelta
    from pathlib import Path
    from runner import clickhouse_append, el

    def extract(ctx):
        ts = ctx.window.start
        while ts < ctx.window.end:
            yield [{"id": int(ts.timestamp()) // 60, "ts": ts}]
            hang = os.environ.get("HANG_AT_WINDOW")
            if hang == ctx.window.start.isoformat() and ts.minute == 20:
                Path(os.environ["HANG_MARKER"]).write_text(ctx.run_id)
                time.sleep(120)
            ts += timedelta(minutes=10)

    pipeline = el("ticks", schedule="0 * * * *", extract=extract,
                  load=clickhouse_append("ticks"))
"""
MIGRATION = (
    "CREATE TABLE {{database}}.ticks (id UInt64, ts DateTime64(3, 'UTC')) ENGINE = MergeTree "
    "ORDER BY id SETTINGS non_replicated_deduplication_window = 1000"
)
CRONJOB = "pipelines-pipeline-runner-ticks"


def at(hour: int) -> datetime:
    return datetime(2026, 1, 5, hour, tzinfo=UTC)


def job(scheduled: datetime, cronjob: str = CRONJOB) -> dict[str, str]:
    """A scheduled pod's env (see tests/deploy/test_scheduled_runs.py for the chart's)."""
    return {
        "RUNNER_TRIGGER": "schedule",
        "RUNNER_CRONJOB_NAME": cronjob,
        "RUNNER_JOB_NAME": f"{cronjob}-{int(scheduled.timestamp()) // 60}",
    }


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "pipelines").mkdir(parents=True)
    (root / "pipelines" / "ticks_pipeline.py").write_text(textwrap.dedent(PIPELINE))
    (root / "migrations").mkdir()
    (root / "migrations" / "0001_ticks.sql").write_text(MIGRATION)
    runner(root, {}, "migrate")
    return root


def environment(project: Path, extra: dict[str, str]) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")},
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_LOCK_BACKEND": "file",
        "RUNNER_LOG_FORMAT": "json",
        "RUNNER_BATCH_ROWS": "1",
        "RUNNER_INSERT_ROWS": "1",
        **extra,
    }


def runner(
    project: Path, extra: dict[str, str], *args: str, code: int = 0
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "runner", *args],
        env=environment(project, extra),
        cwd=project,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == code, result.stderr
    return result


def runs(project: Path) -> list[tuple[str, str, str]]:
    out = runner(
        project,
        {},
        "query",
        "SELECT window_start, trigger, status, error_class FROM pipeline_runner.runs FINAL "
        "ORDER BY started_at",
        "-o",
        "json",
    )
    return [
        (row["window_start"][11:16], row["trigger"], row["status"] + row["error_class"])
        for row in json.loads(out.stdout)
    ]


def rows_per_hour(project: Path) -> dict[int, tuple[int, int]]:
    out = runner(
        project,
        {},
        "query",
        "SELECT toHour(ts) AS h, count() AS n, uniqExact(id) AS u FROM ticks GROUP BY h ORDER BY h",
        "-o",
        "json",
    )
    return {int(r["h"]): (int(r["n"]), int(r["u"])) for r in json.loads(out.stdout)}


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    return line


@pytest.mark.parametrize(
    ("env", "named"),
    [
        # a Job named like the controller's, for a time still to come
        (
            {"RUNNER_JOB_NAME": f"{CRONJOB}-{int(at(23).timestamp()) // 60 + 10**6}"},
            "RUNNER_JOB_NAME",
        ),
        ({"RUNNER_JOB_NAME": f"{CRONJOB}-{'9' * 40}"}, "RUNNER_JOB_NAME"),
        ({"RUNNER_JOB_NAME": f"{CRONJOB}-999999999999"}, "RUNNER_JOB_NAME"),
        ({"RUNNER_SCHEDULED_TIME": "2026-13-01"}, "RUNNER_SCHEDULED_TIME"),
        ({"RUNNER_SCHEDULED_TIME": "now\x1b[2J\nINJECTED"}, "RUNNER_SCHEDULED_TIME"),
        ({"RUNNER_SCHEDULED_TIME": "1800-01-01"}, "RUNNER_SCHEDULED_TIME"),
        ({"RUNNER_SCHEDULED_TIME": "2299-12-31T23:00"}, "RUNNER_SCHEDULED_TIME"),
        ({"RUNNER_SCHEDULED_TIME": "2026-01-05T15:00"}, "RUNNER_SCHEDULED_TIME"),  # disagrees
    ],
)
def test_a_broken_or_forged_scheduled_time_is_refused_in_one_line(
    project: Path, env: dict[str, str], named: str
) -> None:
    pod = {**job(at(14)), **env}
    result = runner(project, pod, "run", "ticks", code=3)
    line = one_line_error(result)
    assert named in line
    assert "\x1b" not in line
    assert runs(project) == []  # refused before anything was recorded or loaded


def test_a_job_named_by_hand_is_never_taken_as_scheduled(project: Path) -> None:
    # the notes' form (`-m<seconds>`), a backfill-like name, and digits only Unicode calls digits
    for name in (f"{CRONJOB}-m1767625200", f"{CRONJOB}-bf-29474880", f"{CRONJOB}-٢٩٤٧٤٨٨٠"):
        pod = {**job(at(14)), "RUNNER_JOB_NAME": name}
        result = runner(project, pod, "run", "ticks", "--dry-run")
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        [source] = [line for line in lines if line["event"].startswith("window from the wall")]
        assert (source["window_source"], source["job"]) == ("wall-clock", name)
        [plan] = [line for line in lines if line["event"] == "dry run: nothing read or written"]
        assert datetime.fromisoformat(plan["window_end"]) > at(14) + timedelta(days=30)


def test_a_pod_killed_while_catching_up_leaves_every_window_once(
    project: Path, tmp_path: Path
) -> None:
    runner(project, job(at(11)), "run", "ticks")  # 10:00-11:00
    marker = tmp_path / "hanging"
    pod = {**job(at(15)), "HANG_AT_WINDOW": at(12).isoformat(), "HANG_MARKER": str(marker)}
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", "ticks"],
        env=environment(project, pod),
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(1200):  # bounded wait for the catch-up of 12:00 to be midway
            if marker.exists() or process.poll() is not None:
                break
            time.sleep(0.1)
        assert marker.exists(), "the catch-up of 12:00 never reached its third batch"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    # the Job's next pod (a kill is retried): 11:00 is done, 12:00 was lost halfway
    runner(project, job(at(15)), "run", "ticks")
    assert runs(project) == [
        ("10:00", "schedule", "succeeded"),
        ("11:00", "catchup", "succeeded"),
        ("12:00", "catchup", "failedLostRun"),
        ("12:00", "catchup", "succeeded"),
        ("13:00", "catchup", "succeeded"),
        ("14:00", "schedule", "succeeded"),
    ]
    assert rows_per_hour(project) == dict.fromkeys(range(10, 15), (6, 6))
