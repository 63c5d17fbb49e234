"""The shipped example pipelines, run as a user runs them: real `runner` subprocesses."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
WINDOW = ["--start", "2026-01-01", "--end", "2026-01-08"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("example-project")
    shutil.copytree(
        ROOT / "pipelines", root / "pipelines", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(ROOT / "migrations", root / "migrations")
    return root


def runner(project, *args):
    env = {**os.environ, "RUNNER_PROJECT_DIR": str(project), "RUNNER_LOG_FORMAT": "json"}
    result = subprocess.run(
        [sys.executable, "-m", "runner", *args],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def query(project, sql):
    code = (
        "import sys; from runner.settings import load_settings; "
        "from runner.warehouse.client import Warehouse; "
        "w = Warehouse.connect(load_settings()); print(w.query_rows(sys.argv[1])[0][0])"
    )
    env = {**os.environ, "RUNNER_PROJECT_DIR": str(project)}
    out = subprocess.run(
        [sys.executable, "-c", code, sql], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_every_example_loads_the_expected_rows(project):
    listed = runner(project, "list").stdout
    for name in ("events", "customers", "daily_revenue", "exports"):
        assert name in listed
    runner(project, "migrate")
    for name in ("events", "customers", "daily_revenue", "exports"):
        runner(project, "run", name, *WINDOW)
    runner(project, "run", "events", *WINDOW)  # a retried window adds nothing
    assert query(project, "SELECT count() FROM events") == "28000"
    assert query(project, "SELECT uniqExact(event_id) FROM events") == "28000"
    assert query(project, "SELECT count() FROM customers FINAL") == "2000"
    assert query(project, "SELECT count() FROM _quarantine WHERE pipeline = 'customers'") == "5"
    assert query(project, "SELECT count() FROM daily_revenue FINAL") == "70"
    revenue = float(query(project, "SELECT sum(revenue) FROM daily_revenue FINAL"))
    raw = float(query(project, "SELECT sum(amount) FROM events WHERE type = 'purchase'"))
    assert revenue == pytest.approx(raw, abs=1.0)
    export = project / "exports" / "exports" / "20260101T000000"
    assert pq.read_table(export / "daily_revenue.parquet").num_rows == 70
    assert (export / "customers.jsonl.gz").stat().st_size > 0
