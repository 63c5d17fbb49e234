"""Attacks on how a run ends, through real `runner` processes: bad paths in settings, a
step that calls sys.exit, a batch that outlives the stop grace period, SIGKILL.  Every
run must end with one line on stderr and a documented exit code (never a traceback or a
silent exit), and never leave a `running` record that looks alive."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

PIPELINES = {
    "plain": """
        from runner import el
        pipeline = el("plain", extract=[{"i": 1}], load=lambda batch: None)
    """,
    # blocks in its load (after writing a marker) when --param block=<marker path>
    "blocker": """
        import time
        from pathlib import Path
        from runner import el

        def load(batch, ctx):
            marker = ctx.params.get("block")
            if marker:
                Path(marker).write_text("in the load")
                time.sleep(60)

        pipeline = el("blocker", schedule="0 0 * * *", extract=[{"i": 1}], load=load)
    """,
    "exits": """
        import sys
        from runner import el

        def extract(ctx):
            if ctx.params.get("where") == "extract":
                sys.exit(7)
            yield [{"i": 1}]

        def load(batch, ctx):
            sys.exit(7)

        pipeline = el("exits", extract=extract, load=load)
    """,
}
WINDOW = ["--start", "2026-01-01", "--end", "2026-01-02"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "pipelines").mkdir(parents=True)
    (root / "migrations").mkdir()
    for name, body in PIPELINES.items():
        (root / "pipelines" / f"{name}_pipeline.py").write_text(textwrap.dedent(body))
    return root


def env_for(project: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_WAREHOUSE_URL": f"chdb://{project / 'wh'}",
        "RUNNER_LOG_FORMAT": "json",
        "RUNNER_LOCK_BACKEND": "file",
        "RUNNER_LOCK_DIR": str(project / "locks"),
        **extra,
    }


def runner(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The run's stderr is exactly one `error:` line (a traceback goes to the JSON log only)."""
    assert "Traceback" not in result.stderr, result.stderr
    for line in result.stdout.splitlines():
        json.loads(line)  # stdout holds JSON log lines and nothing else
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def runs(env: dict[str, str], pipeline: str) -> list[dict[str, Any]]:
    status = runner(env, "status", pipeline, "-o", "json")
    assert status.returncode == 0, status.stderr
    return json.loads(status.stdout)


def migrated(project: Path) -> dict[str, str]:
    env = env_for(project)
    result = runner(env, "migrate")
    assert result.returncode == 0, result.stderr
    return env


# ----------------------------------------------------------------- bad paths in settings


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["a file", "below a file", "in /proc"])
def test_an_unusable_log_dir_is_one_line_exit_3_and_no_run_is_recorded(project, kind):
    env = migrated(project)
    (project / "a-file").write_text("not a directory")
    log_dir = {
        "a file": project / "a-file",
        "below a file": project / "a-file" / "logs",
        "in /proc": Path(f"/proc/runner-logs-{secrets.token_hex(4)}"),
    }[kind]
    result = runner({**env, "RUNNER_LOG_DIR": str(log_dir)}, "run", "plain")
    assert result.returncode == 3, result.stderr
    line = one_line(result)
    assert "RUNNER_LOG_DIR" in line
    assert str(log_dir) in line
    assert runs(env, "plain") == []  # failed before the run was recorded: no ghost
    assert runner(env, "run", "plain").returncode == 0  # and nothing is left locked


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind", ["/dev/null below", "a file", "below a file", "in /proc", "foreign dir", "NUL"]
)
@pytest.mark.parametrize("command", [["run", "plain"], ["migrate"], ["status"]])
def test_a_bad_warehouse_path_is_one_line_exit_3_naming_setting_and_path(project, kind, command):
    (project / "a-file").write_text("not a directory")
    foreign = project / "pipelines"  # a directory full of other files
    before = sorted(p.name for p in foreign.iterdir())
    path = {
        "/dev/null below": "/dev/null/x",
        "a file": str(project / "a-file"),
        "below a file": str(project / "a-file" / "wh"),
        "in /proc": f"/proc/runner-wh-{secrets.token_hex(4)}",
        "foreign dir": str(foreign),
        "NUL": f"{project}/runner%00wh",
    }[kind]
    env = env_for(project, RUNNER_WAREHOUSE_URL=f"chdb://{path}")
    result = runner(env, *command)
    assert result.returncode == 3, result.stderr
    line = one_line(result)
    assert "RUNNER_WAREHOUSE_URL" in line
    assert path.replace("%00", "\\x00") in line
    assert sorted(p.name for p in foreign.iterdir()) == before  # nothing written into it


@pytest.mark.slow
def test_an_unusable_lock_dir_is_one_line_exit_3(project):
    env = migrated(project)
    (project / "a-file").write_text("not a directory")
    result = runner({**env, "RUNNER_LOCK_DIR": str(project / "a-file")}, "run", "plain")
    assert result.returncode == 3, result.stderr
    assert "RUNNER_LOCK_DIR" in one_line(result)
    assert runs(env, "plain") == []


# ----------------------------------------------------------------------- odd endings


@pytest.mark.slow
@pytest.mark.parametrize("where", ["extract", "load"])
def test_a_step_calling_sys_exit_is_a_recorded_failure_not_a_silent_exit(project, where):
    env = migrated(project)
    result = runner(env, "run", "exits", "--param", f"where={where}")
    assert result.returncode == 1, result.stderr
    line = one_line(result)
    assert "SystemExit" in line
    [record] = runs(env, "exits")
    assert record["status"] == "failed"
    assert "SystemExit" in record["error_message"]


def start_blocked(env: dict[str, str], project: Path, *args: str) -> subprocess.Popen[str]:
    """A `runner run blocker` that is inside its load when this returns."""
    marker = project / f"in-load-{secrets.token_hex(4)}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", "blocker", *WINDOW, "-p", f"block={marker}", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(1200):  # bounded: at most a minute
        if marker.exists() or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert marker.exists(), proc.communicate(timeout=30)
    return proc


@pytest.mark.slow
def test_a_batch_outliving_the_grace_period_ends_with_one_line_on_stderr(project):
    env = {**migrated(project), "RUNNER_STOP_GRACE_SECONDS": "1"}
    proc = start_blocked(env, project)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith("error: run ")
    assert "grace period (RUNNER_STOP_GRACE_SECONDS)" in line
    assert any(
        json.loads(x)["event"] == "run did not stop within the grace period; exiting"
        for x in out.splitlines()
    )
    [record] = runs(env, "blocker")
    assert record["status"] == "cancelled"
    assert "grace period" in record["error_message"]
    assert not list((project / "locks" / "runs").glob("*.alive"))  # outcome recorded


# ---------------------------------------------------------------------------- SIGKILL


@pytest.mark.slow
def test_a_sigkilled_run_is_lost_at_once_and_the_next_run_marks_it_failed(project):
    env = migrated(project)  # RUNNER_STALE_AFTER_SECONDS stays at its 300 s default
    proc = start_blocked(env, project)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    [killed] = runs(env, "blocker")
    assert killed["status"] == "lost"  # at once: its liveness lock is free
    backfill = runner(env, "backfill", "status", "blocker", *WINDOW, "-o", "json")
    assert backfill.returncode == 0, backfill.stderr
    assert [w["status"] for w in json.loads(backfill.stdout)] == ["lost"]
    health = runner(env, "health", "-o", "json")
    assert health.returncode == 1
    assert "lost at" in json.dumps(json.loads(health.stdout))
    again = runner(env, "run", "blocker", *WINDOW)
    assert again.returncode == 0, again.stderr
    records = {r["run_id"]: r for r in runs(env, "blocker")}
    dead = records[killed["run_id"]]
    assert (dead["status"], dead["error_class"]) == ("failed", "LostRun")
    assert "liveness lock" in dead["error_message"]
    assert not list((project / "locks" / "runs").glob("*.alive"))  # the proof was cleaned up


@pytest.mark.slow
def test_without_file_locks_a_sigkilled_run_keeps_the_heartbeat_rule(project):
    env = {**migrated(project), "RUNNER_LOCK_BACKEND": "none"}
    proc = start_blocked(env, project)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    [killed] = runs(env, "blocker")
    assert killed["status"] == "running"  # nothing proves it dead until its heartbeat ages
    stale = {**env, "RUNNER_STALE_AFTER_SECONDS": "0.001"}
    [aged] = runs(stale, "blocker")
    assert aged["status"] == "lost"
