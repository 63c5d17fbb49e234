"""Local backfills against the embedded engine: 30 windows, interrupted, resumed."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from runner.cli import app
from runner.pipeline.discovery import Registry
from runner.pipeline.windows import Window
from runner.services.backfill import Range, plan, run_local, window_status
from runner.state.runs import RunHistory

PIPELINE = """
import time
from datetime import timedelta
from runner import clickhouse_append, el

def extract(ctx):
    day = int(ctx.window.start.timestamp()) // 86400
    time.sleep(float(ctx.params.get("sleep", "0")))
    for i in range(50):
        yield {"id": day * 1000 + i, "ts": ctx.window.start + timedelta(minutes=i)}

pipeline = el("daily", schedule="0 0 * * *", extract=extract, load=clickhouse_append("facts"))
"""
MIGRATION = (
    "CREATE TABLE {{database}}.facts (id UInt64, ts DateTime64(3, 'UTC')) ENGINE = MergeTree "
    "ORDER BY id SETTINGS non_replicated_deduplication_window = 1000"
)
JANUARY = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 31, tzinfo=UTC))
RANGE = Range(JANUARY)  # 30 daily windows


@pytest.fixture
def project(tmp_path):
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "daily_pipeline.py").write_text(PIPELINE)
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_facts.sql").write_text(MIGRATION)
    return tmp_path


@pytest.fixture
def settings(runner_settings, project, warehouse):
    from runner.migrate.apply import Migrator

    Migrator(
        warehouse, project / "migrations", state_database=runner_settings.state_database
    ).apply()
    return runner_settings.model_copy(update={"project_dir": project, "lock_backend": "file"})


@pytest.mark.slow
def test_a_30_window_backfill_interrupted_and_resumed_loads_each_window_once(
    settings, project, warehouse
):
    registry = Registry(project / "pipelines")
    first = plan(settings, registry, "daily", RANGE)
    assert (len(first.windows), len(first.done), len(first.todo)) == (30, 0, 30)
    cancel = threading.Event()
    seen = []

    def stop_after_ten(window, status, steps):
        seen.append(status)
        if len(seen) == 10:
            cancel.set()  # as Ctrl-C does

    outcome = run_local(
        settings,
        registry,
        "daily",
        first.todo,
        parallelism=2,
        on_window=stop_after_ten,
        cancel=cancel,
    )
    assert outcome.interrupted
    assert 10 <= len(outcome.succeeded) < 30
    resumed = plan(settings, registry, "daily", RANGE)
    assert len(resumed.done) == len(outcome.succeeded)
    assert len(resumed.todo) == 30 - len(outcome.succeeded)
    again = run_local(settings, registry, "daily", resumed.todo, parallelism=3)
    assert not again.interrupted
    assert not again.failed
    assert warehouse.query_rows("SELECT count(), uniqExact(id) FROM facts") == [(1500, 1500)]
    assert plan(settings, registry, "daily", RANGE).todo == []
    redo = plan(settings, registry, "daily", Range(JANUARY, only_missing=False))
    run_local(settings, registry, "daily", redo.todo[:3])
    assert warehouse.query_rows("SELECT count() FROM facts") == [(1500,)]  # redone, not duplicated
    statuses = {r["status"] for r in window_status(settings, registry, "daily", RANGE)}
    assert statuses == {"succeeded"}


def test_cli_plan_run_and_status(settings, project):
    env = {
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_WAREHOUSE_URL": settings.warehouse_url,
        "RUNNER_DATABASE": settings.database,
        "RUNNER_STATE_DATABASE": settings.state_database,
        "RUNNER_LOCK_BACKEND": "file",
        "RUNNER_LOG_FORMAT": "json",
    }
    args = ["--start", "2026-02-01", "--end", "2026-02-04"]
    runner = CliRunner()
    planned = runner.invoke(app, ["backfill", "plan", "daily", *args], env=env)
    assert planned.exit_code == 0, planned.output
    assert "3 windows, 0 already succeeded, 3 to run" in planned.stdout
    ran = runner.invoke(app, ["backfill", "run", "daily", *args, "--parallelism", "2"], env=env)
    assert ran.exit_code == 0, ran.output
    progress = [
        json.loads(line) for line in ran.stdout.splitlines() if '"backfill window finished"' in line
    ]
    assert sorted(p["done"] for p in progress) == [1, 2, 3]
    assert all(p["status"] == "succeeded" and p["rows_loaded"] == 50 for p in progress)
    status = json.loads(
        runner.invoke(app, ["backfill", "status", "daily", *args, "-o", "json"], env=env).stdout
    )
    assert [s["status"] for s in status] == ["succeeded"] * 3
    replan = json.loads(
        runner.invoke(app, ["backfill", "plan", "daily", *args, "-o", "json"], env=env).stdout
    )
    assert (replan["windows"], replan["done"], replan["todo"]) == (3, 3, [])
    assert not replan["widened"]
    again = runner.invoke(app, ["backfill", "run", "daily", *args], env=env)
    assert again.exit_code == 0, again.output
    assert "nothing to do: all 3 windows of 'daily'" in again.stderr
    assert "backfill window finished" not in again.stdout
    too_many = runner.invoke(
        app, ["backfill", "run", "daily", "--start", "2020-01-01", "--end", "2026-01-01"], env=env
    )
    assert too_many.exit_code == 2
    assert "more than RUNNER_BACKFILL_MAX_WINDOWS=500: pass --yes" in too_many.stderr


@pytest.mark.slow
def test_ctrl_c_stops_a_backfill_subprocess_and_a_rerun_resumes(project, tmp_path):
    env = {
        **os.environ,
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_WAREHOUSE_URL": f"chdb://{tmp_path / 'wh'}",
        "RUNNER_LOCK_BACKEND": "file",
        "RUNNER_LOG_FORMAT": "json",
    }
    subprocess.run(
        [sys.executable, "-m", "runner", "migrate"], env=env, check=True, capture_output=True
    )
    (project / "pipelines" / "daily_pipeline.py").write_text(
        PIPELINE.replace('ctx.params.get("sleep", "0")', '"0.15"')
    )
    args = [
        sys.executable,
        "-m",
        "runner",
        "backfill",
        "run",
        "daily",
        "--start",
        "2026-01-01",
        "--end",
        "2026-01-21",
    ]
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    finished = 0
    for line in proc.stdout:
        finished += '"backfill window finished"' in line
        if finished == 3:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    started = time.monotonic()
    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stderr
    assert time.monotonic() - started < 60
    done = [
        json.loads(line)
        for line in rerun.stdout.splitlines()
        if '"backfill window finished"' in line
    ]
    assert 0 < len(done) < 20  # only the missing windows ran
    count = subprocess.run(
        [
            sys.executable,
            "-c",
            "from runner.settings import load_settings; from runner.warehouse.client import Warehouse; "
            "print(Warehouse.connect(load_settings()).query_rows('SELECT count(), uniqExact(id) FROM facts')[0])",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert count.stdout.strip() == "(1000, 1000)"


@pytest.mark.slow
def test_windows_share_connections_and_one_schema_gate(settings, project, warehouse, monkeypatch):
    from runner.migrate import gate
    from runner.warehouse.client import Warehouse

    connects, gates = [], []
    real_connect, real_gate = Warehouse.connect.__func__, gate.open_when_ready

    def counting_connect(cls, *args, **kwargs):
        connects.append(1)
        return real_connect(cls, *args, **kwargs)

    def counting_gate(*args, **kwargs):
        gates.append(1)
        return real_gate(*args, **kwargs)

    monkeypatch.setattr(Warehouse, "connect", classmethod(counting_connect))
    monkeypatch.setattr(gate, "open_when_ready", counting_gate)
    registry = Registry(project / "pipelines")
    todo = plan(settings, registry, "daily", RANGE).todo[:20]
    connects.clear()
    outcome = run_local(settings, registry, "daily", todo)
    assert len(outcome.succeeded) == 20
    # the run's own connection, the pipeline's, and the loader's inserts: opened once, reused
    assert len(connects) <= 4, len(connects)
    assert len(gates) == 1
    connects.clear()
    parallel = run_local(
        settings, registry, "daily", plan(settings, registry, "daily", RANGE).todo, parallelism=3
    )
    assert len(parallel.succeeded) == 10
    assert len(connects) <= 12, len(connects)
    assert warehouse.query_rows("SELECT count(), uniqExact(id) FROM facts") == [(1500, 1500)]
    records = RunHistory(warehouse, settings.state_database).in_range(
        "daily", JANUARY.start, JANUARY.end
    )
    assert len(records) == 30
    assert {r.status for r in records} == {"succeeded"}


def test_a_monthly_schedule_is_widened_and_says_so(settings, project):
    (project / "pipelines" / "monthly_pipeline.py").write_text(
        "from runner import el\n"
        "pipeline = el('monthly', schedule='0 1 1 * *', extract=[], load=lambda b: None)\n"
    )
    env = {
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_WAREHOUSE_URL": settings.warehouse_url,
        "RUNNER_DATABASE": settings.database,
        "RUNNER_STATE_DATABASE": settings.state_database,
        "RUNNER_LOCK_BACKEND": "file",
        "RUNNER_LOG_FORMAT": "json",
    }
    year = ["--start", "2025-01-01", "--end", "2026-01-01"]
    planned = CliRunner().invoke(app, ["backfill", "plan", "monthly", *year, "-o", "json"], env=env)
    assert planned.exit_code == 0, planned.output
    shown = json.loads(planned.stdout)
    assert shown["windows"] == 13
    assert shown["widened"]
    assert shown["requested"] == ["2025-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00"]
    assert shown["planned"] == ["2024-12-01T01:00:00+00:00", "2026-01-01T01:00:00+00:00"]
    assert shown["todo"][-1] == ["2025-12-01T01:00:00+00:00", "2026-01-01T01:00:00+00:00"]
    text = CliRunner().invoke(app, ["backfill", "plan", "monthly", *year], env=env).stdout
    assert (
        "range widened to whole scheduled windows: 2024-12-01T01:00:00+00:00 .. "
        "2026-01-01T01:00:00+00:00 (asked for 2025-01-01T00:00:00+00:00 .. "
        "2026-01-01T00:00:00+00:00)" in text
    )
    ran = CliRunner().invoke(app, ["backfill", "run", "monthly", *year], env=env)
    assert ran.exit_code == 0, ran.output
    assert "range widened" in ran.stderr
    assert "13 windows succeeded, 0 failed" in ran.stderr


def test_month_steps_run_end_to_end(settings, project, warehouse):
    env = {
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_WAREHOUSE_URL": settings.warehouse_url,
        "RUNNER_DATABASE": settings.database,
        "RUNNER_STATE_DATABASE": settings.state_database,
        "RUNNER_LOCK_BACKEND": "file",
        "RUNNER_LOG_FORMAT": "json",
    }
    args = ["--start", "2024-01-31", "--end", "2024-05-01", "--step", "1mo"]
    ran = CliRunner().invoke(app, ["backfill", "run", "daily", *args], env=env)
    assert ran.exit_code == 0, ran.output
    status = json.loads(
        CliRunner()
        .invoke(app, ["backfill", "status", "daily", *args, "-o", "json"], env=env)
        .stdout
    )
    assert [(s["window_start"][:10], s["status"]) for s in status] == [
        ("2024-01-31", "succeeded"),
        ("2024-02-29", "succeeded"),
        ("2024-03-31", "succeeded"),
        ("2024-04-30", "succeeded"),
    ]
    assert status[-1]["window_end"] == "2024-05-01T00:00:00+00:00"


def read_terminal(args, env, cwd):
    """Run a command on a pseudo-terminal (stdout and stderr); everything it showed."""
    import fcntl
    import pty
    import struct
    import termios

    main_fd, sub_fd = pty.openpty()
    fcntl.ioctl(sub_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 120 columns
    proc = subprocess.Popen(
        args, env=env, cwd=cwd, stdin=sub_fd, stdout=sub_fd, stderr=sub_fd, close_fds=True
    )
    os.close(sub_fd)
    shown = b""
    while True:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(main_fd)
    return proc.wait(timeout=120), shown.decode(errors="replace")


@pytest.mark.slow
def test_on_a_terminal_the_bar_is_not_interleaved_with_log_lines(project, tmp_path):
    env = {
        **os.environ,
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_WAREHOUSE_URL": f"chdb://{tmp_path / 'wh'}",
        "RUNNER_LOCK_BACKEND": "file",
        "RUNNER_LOG_FORMAT": "auto",
    }
    subprocess.run(
        [sys.executable, "-m", "runner", "migrate"], env=env, check=True, capture_output=True
    )
    args = [sys.executable, "-m", "runner", "backfill", "run", "daily"]
    code, shown = read_terminal(
        [*args, "--start", "2026-01-01", "--end", "2026-01-06"], env, tmp_path
    )
    assert code == 0, shown
    assert "backfill daily" in shown  # the bar
    assert "5 windows succeeded, 0 failed" in shown
    for log_text in ("run started", "run finished", '"event"', "pipeline="):
        assert log_text not in shown
    [log_line] = [line for line in shown.splitlines() if line.startswith("run logs: ")]
    log_file = project / log_line.removeprefix("run logs: ").strip().split(str(project) + "/")[-1]
    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert sum(e["event"] == "run finished" for e in events) == 5
    again_code, again = read_terminal(
        [*args, "--start", "2026-01-01", "--end", "2026-01-06"], env, tmp_path
    )
    assert again_code == 0
    assert "nothing to do: all 5 windows of 'daily'" in again
    assert "backfill daily" not in again


def test_windows_that_have_not_ended_are_left_out_and_said(settings, project):
    from datetime import timedelta

    env = {
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_WAREHOUSE_URL": settings.warehouse_url,
        "RUNNER_DATABASE": settings.database,
        "RUNNER_STATE_DATABASE": settings.state_database,
        "RUNNER_LOCK_BACKEND": "file",
    }
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    args = ["--start", (today - timedelta(days=2)).isoformat(), "--end"]
    args.append((today + timedelta(days=3)).isoformat())
    planned = CliRunner().invoke(app, ["backfill", "plan", "daily", *args], env=env)
    assert planned.exit_code == 0, planned.output
    assert "2 windows, 0 already succeeded, 2 to run" in planned.stdout
    assert "left out 3 windows that have not ended yet (from " in planned.stdout
    shown = json.loads(
        CliRunner().invoke(app, ["backfill", "plan", "daily", *args, "-o", "json"], env=env).stdout
    )
    assert [w["reason"] for w in shown["left_out"]] == ["not ended yet"] * 3
    status = json.loads(
        CliRunner()
        .invoke(app, ["backfill", "status", "daily", *args, "-o", "json"], env=env)
        .stdout
    )
    assert [s["status"] for s in status] == ["pending"] * 2 + ["not ended"] * 3
