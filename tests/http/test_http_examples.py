"""The shipped example pipelines over HTTPS, as a CronJob runs them: real `runner` processes
talking to the loopback server with a password and a CA made for the run."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from loopback_project import make_project

pytestmark = pytest.mark.http
WINDOW = ["--start", "2026-01-01", "--end", "2026-01-08"]
EXAMPLES = ("events", "customers", "daily_revenue", "exports")


@pytest.fixture(scope="module")
def examples_done(loopback, tmp_path_factory):
    """Migrate and run every example once over HTTPS (shared by the tests below)."""
    project = make_project(tmp_path_factory.mktemp("examples") / "p", loopback, examples=True)
    loopback.clear_requests()
    migrate = project.runner("migrate")
    runs = {name: project.runner("run", name, *WINDOW) for name in EXAMPLES}
    yield project, migrate, runs
    project.drop()


@pytest.mark.slow
def test_every_example_loads_the_expected_rows_over_https(examples_done):
    project, _, runs = examples_done
    for name, run in runs.items():
        assert json.loads(run.stdout.strip().splitlines()[-1])["status"] == "succeeded", name
    assert project.scalar("SELECT count() FROM events") == 28000
    assert project.scalar("SELECT uniqExact(event_id) FROM events") == 28000
    assert project.scalar("SELECT count() FROM customers FINAL") == 2000
    assert project.scalar("SELECT count() FROM _quarantine WHERE pipeline = 'customers'") == 5
    assert project.scalar("SELECT count() FROM daily_revenue FINAL") == 70
    revenue = project.scalar("SELECT sum(revenue) FROM daily_revenue FINAL")
    raw = project.scalar("SELECT sum(amount) FROM events WHERE type = 'purchase'")
    assert revenue == pytest.approx(raw, abs=1.0)
    export = project.root / "exports" / "exports" / "20260101T000000"
    assert pq.read_table(export / "daily_revenue.parquet").num_rows == 70


def test_every_request_went_over_tls_with_the_password_in_the_header_only(examples_done):
    project, _, _ = examples_done
    seen = project.server.requests()
    assert len(seen) > 50  # migrations, gates, history, inserts, queries
    assert {r["auth"] for r in seen} == {"basic"}
    assert {r["user"] for r in seen} == {"etl"}
    assert not [r["url"] for r in seen if project.server.password in r["url"]]
    inserts = [r for r in seen if "INSERT" in r["url"] and "FORMAT+Arrow" in r["url"]]
    assert inserts  # the loaders' Arrow inserts, with their deduplication token in the URL
    assert all("insert_deduplication_token" in r["url"] for r in inserts if "events" in r["url"])


def test_a_rerun_of_the_window_adds_nothing(examples_done):
    project, _, _ = examples_done
    project.runner("run", "events", *WINDOW)
    project.runner("run", "customers", *WINDOW)
    assert project.scalar("SELECT count() FROM events") == 28000
    assert project.scalar("SELECT count() FROM customers FINAL") == 2000


def test_status_health_check_and_migrate_status_over_https(examples_done):
    project, _, _ = examples_done
    status = project.runner("status", "-o", "json")
    runs = json.loads(status.stdout)
    assert {r["pipeline"] for r in runs} >= set(EXAMPLES)
    assert {r["status"] for r in runs} == {"succeeded"}
    health = project.runner("health", "-o", "json")
    assert health.returncode == 0, health.stdout
    check = project.runner("check", "-o", "json")
    report = json.loads(check.stdout)
    by_name = {c["name"]: c for c in (report["checks"] if isinstance(report, dict) else report)}
    assert by_name["warehouse"]["ok"]
    assert project.server.url(project.database).split("@")[1] in by_name["warehouse"]["detail"]
    assert by_name["schema"]["ok"]
    migrate_status = project.runner("migrate", "status", "-o", "json")
    assert migrate_status.returncode == 0
    assert project.server.password not in status.stdout + health.stdout + check.stdout
