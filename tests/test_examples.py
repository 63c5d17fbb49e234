"""The shipped example pipelines, run as a user runs them: real `runner` subprocesses.

Each test checks what the README says of one example, window by window: a run loads its
window's rows, a run of another window adds only that window's rows, and a re-run of a
window changes nothing.  Expected figures come from the sample files themselves.
"""

import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow  # every test runs the shipped examples in several `runner` processes

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "pipelines" / "data"
WEEK = ["--start", "2026-01-01", "--end", "2026-01-08"]


@pytest.fixture
def project(tmp_path):
    """A fresh copy of the example project, migrated, with its own embedded warehouse."""
    root = tmp_path / "example-project"
    shutil.copytree(
        ROOT / "pipelines", root / "pipelines", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(ROOT / "migrations", root / "migrations")
    runner(root, "migrate")
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


def window(start, end):
    return ["--start", start, "--end", end]


def query(project, *sqls):
    """First value of each query, as text, read in one subprocess."""
    code = (
        "import json, sys; from runner.settings import load_settings; "
        "from runner.warehouse.client import Warehouse; "
        "w = Warehouse.connect(load_settings()); "
        "print(json.dumps([str(w.query_rows(q)[0][0]) for q in sys.argv[1:]]))"
    )
    env = {**os.environ, "RUNNER_PROJECT_DIR": str(project)}
    out = subprocess.run(
        [sys.executable, "-c", code, *sqls], env=env, capture_output=True, text=True, check=True
    )
    values = json.loads(out.stdout)
    return values[0] if len(sqls) == 1 else values


def source_events():
    """Every event of the sample files: (id, ts, type, amount)."""
    events = []
    for path in sorted((DATA / "events").glob("events_*.csv.gz")):
        with gzip.open(path, "rt", newline="") as handle:
            for row in csv.DictReader(handle):
                ts = datetime.fromisoformat(row["ts"]).replace(tzinfo=UTC)
                amount = float(row["amount"]) if row["amount"] else 0.0
                events.append((int(row["event_id"]), ts, row["type"], amount))
    return events


def between(events, start, end):
    low = datetime.fromisoformat(start).replace(tzinfo=UTC)
    high = datetime.fromisoformat(end).replace(tzinfo=UTC)
    return [e for e in events if low <= e[1] < high]


def test_events_loads_only_its_windows_rows_and_a_rerun_adds_nothing(project):
    events = source_events()
    assert len(events) == 28000
    counts = "SELECT count() FROM events", "SELECT uniqExact(event_id) FROM events"

    runner(project, "run", "events", *window("2026-01-01", "2026-01-02"))
    day_one = len(between(events, "2026-01-01", "2026-01-02"))
    assert query(project, *counts) == [str(day_one)] * 2

    runner(project, "run", "events", *window("2026-01-02", "2026-01-03"))
    two_days = len(between(events, "2026-01-01", "2026-01-03"))
    assert query(project, *counts) == [str(two_days)] * 2

    runner(project, "run", "events", *window("2026-01-01", "2026-01-02"))  # retried window
    assert query(project, *counts) == [str(two_days)] * 2

    # two of its hourly scheduled windows: each adds that hour's events, once
    hour = ("2026-01-05T13:00:00", "2026-01-05T14:00:00")
    runner(project, "run", "events", *window(*hour))
    runner(project, "run", "events", *window(*hour))
    expected = two_days + len(between(events, *hour))
    assert query(project, *counts) == [str(expected)] * 2
    assert (
        query(
            project,
            "SELECT count() FROM events WHERE toDate(ts) = '2026-01-05' AND toHour(ts) != 13",
        )
        == "0"
    )


def test_customers_takes_the_windows_updates_and_a_rerun_changes_nothing(project):
    runner(project, "run", "customers", *WEEK)
    state = (
        "SELECT count() FROM customers FINAL",
        "SELECT cityHash64(groupArraySorted(10000)((customer_id, country, updated_at))) "
        "FROM customers FINAL",
        "SELECT count() FROM _quarantine WHERE pipeline = 'customers'",
    )
    count, week_state, quarantined = query(project, *state)
    assert (count, quarantined) == ("2000", "5")

    runner(project, "run", "customers", *window("2026-01-08", "2026-01-11"))  # newer versions
    count, later_state, quarantined = query(project, *state)
    assert (count, quarantined) == ("2000", "5")
    assert later_state != week_state
    assert query(
        project, "SELECT count() FROM customers FINAL WHERE updated_at >= '2026-01-08'"
    ) == ("150")

    runner(project, "run", "customers", *WEEK)  # a re-run of an older window
    count, rerun_state, quarantined = query(project, *state)
    assert (count, rerun_state) == ("2000", later_state)
    # the quarantine is a log per run: the re-run recorded the same five rows again
    assert quarantined == "10"
    assert (
        query(
            project,
            "SELECT uniqExact(record) FROM _quarantine WHERE pipeline = 'customers'",
        )
        == "5"
    )


def test_daily_revenue_recomputes_whole_days_that_end_in_the_window(project):
    events = source_events()
    runner(project, "run", "events", *WEEK)
    revenue = Counter()
    for _, ts, kind, amount in events:
        if kind == "purchase":
            revenue[ts.date().isoformat()] += amount

    def mart(*days):
        sums = query(
            project,
            *(f"SELECT sum(revenue) FROM daily_revenue FINAL WHERE day = '{day}'" for day in days),
        )
        return [float(v) for v in ([sums] if len(days) == 1 else sums)]

    # its scheduled window: 00:15 to 00:15, so the day before is recomputed whole
    runner(project, "run", "daily_revenue", *window("2026-01-02T00:15", "2026-01-03T00:15"))
    assert query(
        project,
        "SELECT arrayStringConcat(groupArray(DISTINCT toString(day))) FROM daily_revenue FINAL",
    ) == ("2026-01-02")
    assert mart("2026-01-02") == pytest.approx([revenue["2026-01-02"]], abs=0.1)

    runner(project, "run", "daily_revenue", *window("2026-01-01", "2026-01-04"))
    assert query(project, "SELECT count() FROM daily_revenue FINAL") == "30"
    runner(project, "run", "daily_revenue", *window("2026-01-04", "2026-01-08"))
    runner(project, "run", "daily_revenue", *window("2026-01-01", "2026-01-04"))  # re-run
    assert query(project, "SELECT count() FROM daily_revenue FINAL") == "70"
    days = sorted(revenue)
    assert mart(*days) == pytest.approx([revenue[day] for day in days], abs=0.1)
    # a window that ends no day (an hour) computes nothing
    runner(project, "run", "daily_revenue", *window("2026-01-05T10:00", "2026-01-05T11:00"))
    assert query(project, "SELECT count() FROM daily_revenue FINAL") == "70"


def read_jsonl_gz(path):
    with gzip.open(path, "rt") as handle:
        return [json.loads(line) for line in handle]


def test_exports_writes_one_folder_per_window_and_a_rerun_rewrites_the_same(project):
    runner(project, "run", "events", *WEEK)
    runner(project, "run", "customers", *WEEK)
    first, second = window("2026-01-01", "2026-01-04"), window("2026-01-04", "2026-01-08")
    runner(project, "run", "exports", *first)
    runner(project, "run", "exports", *second)

    root = project / "exports" / "exports"
    assert sorted(p.name for p in root.iterdir()) == ["20260101T000000", "20260104T000000"]
    revenue_one = pq.read_table(root / "20260101T000000" / "daily_revenue.parquet")
    revenue_two = pq.read_table(root / "20260104T000000" / "daily_revenue.parquet")
    assert sorted({str(d) for d in revenue_one.column("day").to_pylist()}) == [
        "2026-01-01",
        "2026-01-02",
        "2026-01-03",
    ]
    assert revenue_two.num_rows == 40
    assert revenue_one.num_rows == 30
    customers = read_jsonl_gz(root / "20260101T000000" / "customers.jsonl.gz")
    assert len(customers) == 2000

    runner(project, "run", "exports", *first)  # re-run: the same files, the same rows
    assert sorted(p.name for p in root.iterdir()) == ["20260101T000000", "20260104T000000"]
    assert pq.read_table(root / "20260101T000000" / "daily_revenue.parquet").equals(revenue_one)
    assert read_jsonl_gz(root / "20260101T000000" / "customers.jsonl.gz") == customers
    assert query(project, "SELECT count() FROM daily_revenue FINAL") == "70"
