"""The CLI in-process (typer's CliRunner) and as a real subprocess."""

import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from typer.testing import CliRunner

from runner.cli import app

PIPELINES = {
    "numbers": """
        from runner import clickhouse_append, el

        def extract(ctx):
            for i in range(int(ctx.params.get("n", "100"))):
                yield {"id": i, "label": f"n{i}"}

        pipeline = el(
            "numbers",
            schedule="0 * * * *",
            description="Counts to n",
            owner="tests",
            extract=extract,
            load=clickhouse_append("numbers"),
        )
    """,
    "slow": """
        import time
        from runner import el

        def extract():
            for i in range(600):
                time.sleep(0.05)
                yield [{"i": i}]

        pipeline = el("slow", extract=extract, load=lambda batch: None)
    """,
    "failing": """
        from runner import FatalError, RetriableError, el

        def load(batch, ctx):
            if ctx.params.get("transient"):
                raise RetriableError("upstream timed out")
            raise FatalError("row 3 has no id")

        pipeline = el("failing", extract=[{"i": 1}], load=load)
    """,
}
MIGRATION = (
    "CREATE TABLE IF NOT EXISTS {{database}}.numbers (id UInt32, label String) "
    "ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 100;\n"
)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "pipelines").mkdir()
    for name, body in PIPELINES.items():
        (tmp_path / "pipelines" / f"{name}_pipeline.py").write_text(textwrap.dedent(body))
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_numbers.sql").write_text(MIGRATION)
    return tmp_path


@pytest.fixture
def env(project, warehouse_path):
    return {
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_WAREHOUSE_URL": f"chdb://{warehouse_path}",
        "RUNNER_DATABASE": f"cli_{secrets.token_hex(4)}",
        "RUNNER_LOG_FORMAT": "json",
    }


def invoke(env, *args):
    return CliRunner().invoke(app, list(args), env=env)


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_list_and_show(env):
    result = invoke(env, "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "SCHEDULE", "DESCRIPTION"]
    assert any(line.startswith("numbers") and "0 * * * *" in line for line in lines)
    listed = json.loads(invoke(env, "list", "--output", "json").stdout)
    assert {p["name"] for p in listed["pipelines"]} == {"numbers", "slow", "failing"}
    shown = invoke(env, "show", "numbers")
    assert "owner: tests" in shown.stdout
    assert "load: append(numbers)" in shown.stdout
    assert json.loads(invoke(env, "show", "numbers", "-o", "json").stdout)["kind"] == "el"


def test_list_reports_a_broken_module_and_still_lists_the_rest(env, project):
    (project / "pipelines" / "broken_pipeline.py").write_text("import not_a_module\n")
    result = invoke(env, "list")
    assert result.exit_code == 3
    assert "numbers" in result.stdout
    assert "broken_pipeline.py:1: import failed: ModuleNotFoundError" in result.stderr


def test_run_loads_rows_and_logs_the_run_identity(env):
    assert invoke(env, "migrate").exit_code == 0
    result = invoke(
        env, "run", "numbers", "--param", "n=250", "--start", "2026-01-01", "--end", "2026-01-02"
    )
    assert result.exit_code == 0, result.output
    events = json_lines(result.stdout)
    assert events[-1]["event"] == "run finished"
    assert events[-1]["steps"]["numbers"]["rows_loaded"] == 250
    assert all(e["pipeline"] == "numbers" and e["run_id"] for e in events)
    assert all(e["window_start"] == "2026-01-01T00:00:00+00:00" for e in events)
    # the same window again: deduplicated, still 250 rows
    invoke(env, "run", "numbers", "-p", "n=250", "--start", "2026-01-01", "--end", "2026-01-02")
    from runner.settings import Settings
    from runner.warehouse.client import Warehouse

    wh = Warehouse.connect(
        Settings(warehouse_url=env["RUNNER_WAREHOUSE_URL"], database=env["RUNNER_DATABASE"])
    )
    assert wh.query_rows("SELECT count() FROM numbers") == [(250,)]


def test_dry_run_touches_nothing(env):
    result = invoke(env, "run", "numbers", "--dry-run")
    assert result.exit_code == 0, result.output
    [event] = json_lines(result.stdout)
    assert event["plan"]["load"] == "append(numbers)"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["run", "nosuch"], 3, "error: no pipeline 'nosuch'"),
        (
            ["run", "numbers", "--start", "yesterday", "--end", "2026-01-01"],
            2,
            "--start: 'yesterday'",
        ),
        (["run", "numbers", "--param", "novalue"], 2, "expected KEY=VALUE"),
        (["run", "failing"], 1, "error: row 3 has no id [pipeline=failing step=load"),
        (["run", "failing", "-p", "transient=1"], 75, "upstream timed out"),
        (["run", "numbers"], 4, "run `runner migrate` first"),
    ],
)
def test_errors_are_one_line_with_documented_codes(env, args, code, message):
    if args[1] == "failing":
        assert invoke(env, "migrate").exit_code == 0
    result = invoke(env, *args)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def runner_process(env, *args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kwargs,
    )


@pytest.fixture
def process_env(env, tmp_path):
    # a subprocess opens its own embedded warehouse (one chDB path per process)
    return {**env, "RUNNER_WAREHOUSE_URL": f"chdb://{tmp_path / 'proc-warehouse'}"}


def test_subprocess_run_writes_json_logs_and_a_run_log_file(process_env, project):
    assert runner_process(process_env, "migrate").returncode == 0
    result = runner_process(
        {**process_env, "RUNNER_LOG_DIR": "logs"}, "run", "numbers", "-p", "n=10"
    )
    assert result.returncode == 0, result.stderr
    events = json_lines(result.stdout)
    assert events[-1]["status"] == "succeeded"
    [log_file] = (project / "logs" / "numbers").glob("*.jsonl")
    assert log_file.stem == events[-1]["run_id"]
    assert len(log_file.read_text().splitlines()) == len(events)


@pytest.mark.parametrize(
    ("extra_env", "args", "message"),
    [
        ({"RUNNER_BATCH_ROWS": "many"}, ["run", "numbers"], "RUNNER_BATCH_ROWS"),
        ({"RUNNER_WAREHOUSE_URL": "mysql://h/db"}, ["migrate"], "scheme must be chdb"),
        ({}, ["run", "cron"], "cron_pipeline.py:2: pipeline 'cron': schedule: invalid cron"),
    ],
)
def test_subprocess_config_errors_exit_3_without_traceback(
    process_env, project, extra_env, args, message
):
    (project / "pipelines" / "cron_pipeline.py").write_text(
        "from runner import el\npipeline = el('cron', schedule='0 25 * * *', extract=[], load=print)\n"
    )
    result = runner_process({**process_env, **extra_env}, *args)
    assert result.returncode == 3, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_sigterm_stops_between_batches_and_exits_interrupted(process_env):
    assert runner_process(process_env, "migrate").returncode == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", "slow"],
        env={**os.environ, **process_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until the run has started
        if '"run started"' in line or time.monotonic() > deadline:
            break
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "was interrupted and stopped between batches" in err
    last = json_lines(out)[-1]
    assert last["status"] == "cancelled"
    assert 0 < last["steps"]["slow"]["batches"] < 600


def test_help_and_version_are_fast_and_useful():
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "runner", "--help"], capture_output=True, text=True, check=True
    )
    assert time.monotonic() - started < 10
    assert "Exit codes" in result.stdout
    for command in ("list", "show", "run", "migrate"):
        assert command in result.stdout
    assert "runner 0." in CliRunner().invoke(app, ["--version"]).stdout
    run_help = CliRunner().invoke(app, ["run", "--help"]).stdout
    assert "--start" in run_help
    assert "--dry-run" in run_help
