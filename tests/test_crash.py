"""Kill runs with SIGKILL mid-load (real subprocesses), re-run, and check exactly-once."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.slow  # 2 x 20 SIGKILLed runs, each re-run

KILLS = 20  # per load mode
ROWS = 6000
BATCH = 500
WINDOW = ["--start", "2026-01-01", "--end", "2026-01-02"]
PIPELINE = """
    import time
    from datetime import timedelta
    from runner import el
    from runner.tools.load.clickhouse import clickhouse_append, clickhouse_upsert
    {extra_import}

    def extract(ctx):
        start = ctx.window.start
        for b in range({rows} // {batch}):
            time.sleep(0.05)
            yield [
                {{"id": i, "ts": start + timedelta(seconds=i), "v": i * 3}}
                for i in range(b * {batch}, (b + 1) * {batch})
            ]

    pipeline = el("{name}", extract=extract, load={loader})
"""
MODES = {
    "append": (
        "MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 1000",
        "clickhouse_append('t_append')",
        "",
    ),
    "upsert": ("ReplacingMergeTree(v) ORDER BY id", "clickhouse_upsert('t_upsert')", ""),
    "replace": (
        "MergeTree PARTITION BY toDate(ts) ORDER BY id",
        "clickhouse_replace_window('t_replace', time_column='ts')",
        "from runner.tools.load.replace_window import clickhouse_replace_window",
    ),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    (root / "pipelines").mkdir()
    (root / "migrations").mkdir()
    ddl = []
    for mode, (engine, loader, extra) in MODES.items():
        body = PIPELINE.format(
            rows=ROWS, batch=BATCH, name=f"crash_{mode}", loader=loader, extra_import=extra
        )
        (root / "pipelines" / f"crash_{mode}_pipeline.py").write_text(textwrap.dedent(body))
        ddl.append(
            f"CREATE TABLE {{{{database}}}}.t_{mode} (id UInt64, ts DateTime64(3, 'UTC'), v UInt64) ENGINE = {engine}"
        )
    (root / "migrations" / "0001_crash.sql").write_text(";\n".join(ddl) + ";\n")
    return root


def env_for(project):
    return {
        **os.environ,
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_LOG_FORMAT": "json",
        "RUNNER_BATCH_ROWS": str(BATCH),
        # an insert per batch, two in flight: kills land mid-insert
        "RUNNER_INSERT_ROWS": str(BATCH),
        "RUNNER_HEARTBEAT_SECONDS": "0.2",
        "RUNNER_STALE_AFTER_SECONDS": "1",
        "RUNNER_LOCK_BACKEND": "file",
    }


def runner(project, *args, check=True, timeout=120):
    result = subprocess.run(
        [sys.executable, "-m", "runner", *args],
        env=env_for(project),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def query(project, sql):
    code = (
        "import sys, json; from runner.settings import load_settings; "
        "from runner.warehouse.client import Warehouse; "
        "w = Warehouse.connect(load_settings()); print(json.dumps(w.query_rows(sys.argv[1]), default=str))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, sql],
        env=env_for(project),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize("mode", list(MODES))
def test_sigkill_mid_load_then_rerun_loads_every_row_once(project, mode):
    runner(project, "migrate")
    rng = random.Random(f"crash-{mode}")
    killed = 0
    for _ in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, "-m", "runner", "run", f"crash_{mode}", *WINDOW],
            env=env_for(project),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:  # kill somewhere inside the load
            if '"run started"' in line:
                break
        time.sleep(rng.uniform(0.0, 0.6))  # the load takes ~0.6 s: anywhere in it
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        killed += proc.returncode == -signal.SIGKILL
    assert killed == KILLS
    # no lock outlives its holder: the file lock is free the moment the process is gone
    from runner.settings import Settings
    from runner.state.locks import make_lock

    lock = make_lock(Settings(project_dir=project, lock_backend="file"), f"run:crash_{mode}")
    lock.acquire()
    lock.release()
    time.sleep(1.2)  # the killed runs' heartbeats are now stale
    runner(project, "run", f"crash_{mode}", *WINDOW)
    final = "FINAL" if mode == "upsert" else ""
    [[count, unique, total]] = query(
        project, f"SELECT count(), uniqExact(id), sum(v) FROM t_{mode} {final}"
    )
    assert (count, unique) == (ROWS, ROWS)
    assert total == sum(i * 3 for i in range(ROWS))
    statuses = query(
        project,
        "SELECT status, count() FROM pipeline_runner.runs FINAL "
        f"WHERE pipeline = 'crash_{mode}' GROUP BY status ORDER BY status",
    )
    assert dict(statuses) == {"failed": KILLS, "succeeded": 1}


def test_two_concurrent_runs_one_refuses(project, tmp_path):
    """The first run holds its lock, provably, until the second has been refused.

    Its load step says it entered (the run lock is taken before any step runs) and then
    waits for a file only the test creates, so nothing depends on how fast either process
    starts on a loaded machine; the waits are bounded far above any start-up time.
    """
    (project / "pipelines" / "held_pipeline.py").write_text(
        "import time\nfrom pathlib import Path\nfrom runner import el\n"
        "def load(batch, ctx):\n"
        "    Path(ctx.params['entered']).write_text('')\n"
        "    deadline = time.monotonic() + 600\n"
        "    while not Path(ctx.params['release']).exists():\n"
        "        if time.monotonic() > deadline:\n"
        "            raise RuntimeError('never released')\n"
        "        time.sleep(0.05)\n"
        "pipeline = el('held', extract=[{'i': 1}], load=load)\n"
    )
    runner(project, "migrate")
    entered, release = tmp_path / "entered", tmp_path / "release"
    gates = ["-p", f"entered={entered}", "-p", f"release={release}"]
    first = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", "held", *WINDOW, *gates],
        env=env_for(project),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not entered.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert entered.exists(), "the first run never reached its load step"
        second = runner(project, "run", "held", *WINDOW, check=False, timeout=300)
    finally:
        release.write_text("")
        _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err
    assert second.returncode == 5, second.stderr
    assert "run:held" in second.stderr
    assert "held by" in second.stderr


STAGING = "SELECT count() FROM system.tables WHERE database = 'analytics' AND name LIKE '%staging%'"


def test_sigterm_mid_run_cancels_and_shows_nothing_partial(project):
    runner(project, "migrate")
    [[staging_before]] = query(project, STAGING)  # orphans are dropped by the next runs
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runner",
            "run",
            "crash_replace",
            "--start",
            "2026-02-01",
            "--end",
            "2026-02-02",
        ],
        env=env_for(project),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if '"run started"' in line:
            break
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert json.loads(out.strip().splitlines()[-1])["status"] == "cancelled"
    [[visible]] = query(project, "SELECT count() FROM t_replace WHERE ts >= '2026-02-01'")
    [[staging]] = query(project, STAGING)
    [[status]] = query(
        project,
        "SELECT status FROM pipeline_runner.runs FINAL WHERE pipeline = 'crash_replace' "
        "AND toDate(window_start) = '2026-02-01' ORDER BY started_at DESC LIMIT 1",
    )
    assert (visible, staging, status) == (0, staging_before, "cancelled")
    # the lock was released: the next run goes through
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            "run",
            "crash_replace",
            "--start",
            "2026-02-01",
            "--end",
            "2026-02-02",
        ],
        env=env_for(project),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr


def test_a_batch_that_outlives_the_grace_period_is_stopped_anyway(project):
    (project / "pipelines" / "stuck_pipeline.py").write_text(
        "import time\nfrom runner import el\n"
        "def load(batch):\n    time.sleep(60)\n"
        "pipeline = el('stuck', extract=[{'i': 1}], load=load)\n"
    )
    runner(project, "migrate")
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", "stuck"],
        env={**env_for(project), "RUNNER_STOP_GRACE_SECONDS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if '"run started"' in line:
            break
    time.sleep(0.3)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert time.monotonic() - started < 10
    assert "did not stop within the grace period" in out
    [[status, error]] = query(
        project,
        "SELECT status, error_message FROM pipeline_runner.runs FINAL WHERE pipeline = 'stuck'",
    )
    assert status == "cancelled"
    assert "grace period" in error
