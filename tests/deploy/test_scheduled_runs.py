"""What a CronJob's pod does, with the env the rendered chart gives it: real `runner run`
processes on the example project and its embedded warehouse.

The pod's env is taken from `helm template` and resolved as the kubelet would (literal
values, the downward API's Job-name label); the CronJob controller's part is the Job
name, `<cronjob>-<scheduled time in minutes since the epoch>`.
"""

import csv
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from runner.pipeline.windows import schedule_window

pytestmark = pytest.mark.slow  # scheduled Jobs rendered by Helm, each run as a `runner` process

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "pipeline-runner"
JOB_NAME_LABEL = "metadata.labels['batch.kubernetes.io/job-name']"


@pytest.fixture(scope="module")
def events_cronjob(helm3):
    rendered = subprocess.run(
        [str(helm3), "template", "pipelines", str(CHART), "-n", "etl"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    [cronjob] = [
        doc
        for doc in yaml.safe_load_all(rendered)
        if doc
        and doc["kind"] == "CronJob"
        and doc["metadata"]["labels"]["pipeline-runner/pipeline"] == "events"
    ]
    return cronjob


def pod_env(cronjob, job_name):
    """The runner container's env in a pod of Job ``job_name``, as the kubelet resolves it.

    Secrets (the ClickHouse credentials) are left out: the test's warehouse is embedded.
    """
    [container] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    pod = {
        "metadata.name": f"{job_name}-x7k2p",
        "metadata.namespace": "etl",
        JOB_NAME_LABEL: job_name,
    }
    env = {}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        elif "secretKeyRef" in entry["valueFrom"]:
            continue
        else:
            env[entry["name"]] = pod[entry["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def at(hour, day=5):
    return datetime(2026, 1, day, hour, tzinfo=UTC)


def controller_job(cronjob, scheduled):
    """The Job name the CronJob controller gives the run scheduled at ``scheduled``."""
    return f"{cronjob['metadata']['name']}-{int(scheduled.timestamp()) // 60}"


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "example-project"
    shutil.copytree(
        ROOT / "pipelines", root / "pipelines", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(ROOT / "migrations", root / "migrations")
    runner(root, {}, "migrate")
    return root


def runner(project, pod, *args, code=0):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")},
        **pod,
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_LOCK_BACKEND": "file",
        "RUNNER_LOG_FORMAT": "json",
    }
    result = subprocess.run(
        [sys.executable, "-m", "runner", *args],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == code, result.stderr
    return result


def query(project, sql):
    return json.loads(runner(project, {}, "query", sql, "-o", "json").stdout)


def runs(project):
    """Runs of `events`, oldest first: (window start, trigger, status)."""
    rows = query(
        project,
        "SELECT window_start, trigger, status FROM pipeline_runner.runs FINAL "
        "WHERE pipeline = 'events' ORDER BY started_at",
    )
    return [(row["window_start"][:16], row["trigger"], row["status"]) for row in rows]


def events_per_hour(project):
    rows = query(project, "SELECT toHour(ts) AS h, count() AS n FROM events GROUP BY h ORDER BY h")
    return {int(row["h"]): int(row["n"]) for row in rows}


def source_per_hour(day="20260105"):
    with gzip.open(ROOT / "pipelines" / "data" / "events" / f"events_{day}.csv.gz", "rt") as f:
        hours = [datetime.fromisoformat(row["ts"]).hour for row in csv.DictReader(f)]
    return {hour: hours.count(hour) for hour in sorted(set(hours))}


def test_the_rendered_cronjob_gives_its_pods_the_names_a_run_reads(events_cronjob):
    env = pod_env(events_cronjob, "some-job")
    assert env["RUNNER_TRIGGER"] == "schedule"
    assert env["RUNNER_CRONJOB_NAME"] == events_cronjob["metadata"]["name"]
    assert env["RUNNER_JOB_NAME"] == "some-job"  # through the downward API
    assert "RUNNER_SCHEDULED_TIME" not in env


def test_late_missed_and_retried_jobs_load_each_scheduled_window_once(events_cronjob, project):
    source = source_per_hour()
    # the 14:00 Job starts late (the wall clock is months later): its own window, 13:00-14:00
    late = pod_env(events_cronjob, controller_job(events_cronjob, at(14)))
    runner(project, late, "run", "events")
    assert runs(project) == [("2026-01-05T13:00", "schedule", "succeeded")]
    assert events_per_hour(project) == {13: source[13]}

    # the Jobs of 15:00, 16:00 and 17:00 never ran; the 18:00 Job catches them up first
    result = runner(
        project, pod_env(events_cronjob, controller_job(events_cronjob, at(18))), "run", "events"
    )
    assert runs(project) == [
        ("2026-01-05T13:00", "schedule", "succeeded"),
        ("2026-01-05T14:00", "catchup", "succeeded"),
        ("2026-01-05T15:00", "catchup", "succeeded"),
        ("2026-01-05T16:00", "catchup", "succeeded"),
        ("2026-01-05T17:00", "schedule", "succeeded"),
    ]
    assert events_per_hour(project) == {hour: source[hour] for hour in range(13, 18)}
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    [source_line] = [line for line in lines if line["event"] == "window from the scheduled time"]
    assert source_line["window_source"] == "job-name"
    assert source_line["scheduled_time"] == "2026-01-05T18:00:00+00:00"
    started = [line for line in lines if line["event"] == "run started"]
    assert [line["trigger"] for line in started] == ["catchup"] * 3 + ["schedule"]
    assert {line["window_source"] for line in started} == {"job-name"}  # on every run's line

    # a retry of the 14:00 Job, long after: the same window, already loaded: nothing lands
    runner(project, late, "run", "events")
    assert len(runs(project)) == 5
    assert events_per_hour(project) == {hour: source[hour] for hour in range(13, 18)}


def write_recent_events(project, now):
    """Event files for yesterday and today (UTC), one event every 10 minutes."""
    folder = project / "pipelines" / "data" / "events"
    for day in (now - timedelta(days=1), now):
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        out = io.StringIO()
        out.write("event_id,ts,customer_id,type,amount,country\n")
        for i in range(144):
            ts = start + timedelta(minutes=10 * i)
            out.write(f"{int(ts.timestamp())},{ts:%Y-%m-%d %H:%M:%S},1,view,,FR\n")
        with gzip.open(folder / f"events_{start:%Y%m%d}.csv.gz", "wt") as handle:
            handle.write(out.getvalue())


def test_a_job_created_by_hand_runs_the_latest_window_as_a_manual_run(events_cronjob, project):
    before = datetime.now(UTC)
    write_recent_events(project, before)
    runner(
        project, pod_env(events_cronjob, controller_job(events_cronjob, at(14))), "run", "events"
    )
    # as the chart's notes say: kubectl create job --from=cronjob/<cronjob> <cut>-m<seconds>
    name = events_cronjob["metadata"]["name"]
    manual = f"{name[:51].removesuffix('-')}-m{int(before.timestamp())}"
    runner(project, pod_env(events_cronjob, manual), "run", "events")
    after = datetime.now(UTC)
    (_, _, _), (start, trigger, status) = runs(project)
    assert (trigger, status) == ("manual", "succeeded")  # no catch-up, no scheduled time
    expected = {schedule_window("0 * * * *", "UTC", moment).start for moment in (before, after)}
    assert datetime.fromisoformat(start).replace(tzinfo=UTC) in expected
    loaded = query(project, "SELECT count() AS n FROM events WHERE ts >= now() - INTERVAL 1 DAY")
    assert int(loaded[0]["n"]) == 6
