"""Migrations, run history, watermarks and state over HTTPS: `runner migrate` resuming after a
failed statement, `runner status/health/state` and an incremental pipeline, one statement
per request as the real interface wants."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.http
BODY = (
    "CREATE TABLE {{database}}.a (x UInt8) ENGINE = MergeTree ORDER BY x;\n"
    "-- a comment; with a semicolon\n"
    "INSERT INTO {{database}}.a VALUES (1);\n"
    "INSERT INTO {{database}}.TARGET VALUES (2);\n"
)
INCREMENTAL = """
from runner import el
from runner.tools.load.clickhouse import clickhouse_append


def extract(ctx):
    yield [{"n": ctx.window.start.hour}]


pipeline = el("inc", schedule="0 * * * *", incremental=True, extract=extract,
              load=clickhouse_append("hits"))
"""
FAILING = """
from runner import el


def extract(ctx):
    raise ValueError("the source is broken")
    yield


pipeline = el("broken", extract=extract, load=lambda batch: None)
"""


@pytest.mark.slow
def test_a_failed_statement_resumes_there_after_the_fix(http_project):
    project = http_project(migrations={"0001_three.sql": BODY.replace("TARGET", "missing")})
    project.server.clear_requests()
    failed = project.runner("migrate", check=False)
    assert failed.returncode == 1
    [line] = failed.stderr.strip().splitlines()
    assert "0001_three.sql:4: statement 3 of 3 failed" in line
    assert "UNKNOWN_TABLE" in line
    assert "resumes at statement 3" in line
    status = project.runner("migrate", "status", "-o", "json", check=False)
    assert status.returncode == 4
    assert json.loads(status.stdout)["files"][0]["state"] == "partial"
    sent = [r["sql"] for r in project.server.requests() if r["sql"]]
    assert not [sql for sql in sent if ";" in sql.rstrip(";")]  # one statement per request
    (project.root / "migrations" / "0001_three.sql").write_text(BODY.replace("TARGET", "a"))
    project.server.clear_requests()
    project.runner("migrate")
    assert project.rows("SELECT x FROM a ORDER BY x") == [(1,), (2,)]  # 1 and 2 ran once
    resent = [r["sql"] for r in project.server.requests() if "VALUES (1)" in (r["sql"] or "")]
    assert resent == []
    assert project.runner("migrate", "status").returncode == 0


@pytest.mark.slow
def test_run_history_health_and_state_over_https(http_project):
    project = http_project(
        pipelines={"inc_pipeline.py": INCREMENTAL, "broken_pipeline.py": FAILING},
        migrations={
            "0001_hits.sql": "CREATE TABLE {{database}}.hits (n UInt8) ENGINE = MergeTree ORDER BY n;"
        },
    )
    project.runner("migrate")
    seed = "2026-01-01T00:00:00+00:00"
    project.runner("state", "set", "inc", "_window_end", json.dumps(seed))
    first = project.runner("run", "inc")
    finished = json.loads(first.stdout.strip().splitlines()[-1])
    assert finished["window_start"] == seed
    state = json.loads(project.runner("state", "show", "inc").stdout)
    assert state["_window_end"] == finished["window_end"]  # the watermark moved to the end
    second = project.runner("run", "inc")
    assert "the watermark is up to date" in second.stdout.strip().splitlines()[-1]
    broken = project.runner("run", "broken", check=False)
    assert broken.returncode == 1
    assert "the source is broken" in broken.stderr
    runs = json.loads(project.runner("status", "-o", "json").stdout)
    by_pipeline = {r["pipeline"]: r for r in runs}
    assert by_pipeline["inc"]["status"] == "succeeded"
    assert by_pipeline["broken"]["status"] == "failed"
    assert "the source is broken" in by_pipeline["broken"]["error_message"]
    health = project.runner("health", "-o", "json", check=False)
    assert health.returncode == 1  # the broken pipeline's last run failed
    assert project.scalar("SELECT count() FROM hits") == 1
