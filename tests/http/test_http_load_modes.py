"""The three load modes over HTTPS, with their exactly-once guarantees: `runner run` processes
against the loopback server, the engine deduplicating and swapping partitions."""

from __future__ import annotations

import pyarrow as pa
import pytest
from http_pipelines import (
    ROWS,
    WINDOW,
    expected_sum,
    load_migrations,
    load_pipelines,
    small_batches,
)

pytestmark = pytest.mark.http


@pytest.fixture
def project(http_project):
    made = http_project(pipelines=load_pipelines(), migrations=load_migrations())
    made.runner("migrate")
    return made


def run(project, mode, *extra):
    return project.runner("run", f"load_{mode}", *WINDOW, *extra, **small_batches())


def test_a_resent_insert_with_the_same_token_lands_once(http_warehouse):
    http_warehouse.command(
        f"CREATE TABLE {http_warehouse.table('tok')} (a UInt32) ENGINE = MergeTree ORDER BY a "
        "SETTINGS non_replicated_deduplication_window = 100"
    )
    batch = pa.record_batch({"a": pa.array(range(1000), pa.uint32())})
    for token in ("p/n/tok/w/1", "p/n/tok/w/1", "p/n/tok/w/2"):
        http_warehouse.insert_arrow("tok", batch, settings={"insert_deduplication_token": token})
    assert http_warehouse.query_rows("SELECT count() FROM tok") == [(2000,)]


def test_append_rerun_of_a_window_lands_every_row_once(project):
    project.server.clear_requests()
    run(project, "append")
    run(project, "append")
    assert project.rows("SELECT count(), uniqExact(id), sum(v) FROM t_append") == [
        (ROWS, ROWS, expected_sum())
    ]
    tokens = [
        r["url"]
        for r in project.server.requests()
        if "t_append" in r["url"] and "FORMAT+Arrow" in r["url"]
    ]
    assert len(tokens) == 2 * ROWS // 500  # six inserts per run, each sent with its token
    assert all("insert_deduplication_token=load_append" in url for url in tokens)


def test_upsert_keeps_the_newest_version_per_key(project):
    run(project, "upsert", "--param", "version=1")
    run(project, "upsert", "--param", "version=2")
    assert project.rows("SELECT count(), sum(v) FROM t_upsert FINAL") == [(ROWS, expected_sum(2))]


@pytest.mark.slow
def test_replace_window_swaps_partitions_and_leaves_other_windows(project):
    project.runner("run", "load_replace", "--start", "2026-01-02", "--end", "2026-01-03")
    run(project, "replace", "--param", "version=1")
    project.server.clear_requests()
    run(project, "replace", "--param", "version=3")
    by_day = project.rows(
        "SELECT toDate(ts) AS day, count(), sum(v) FROM t_replace GROUP BY day ORDER BY day"
    )
    assert [(str(d), n, s) for d, n, s in by_day] == [
        ("2026-01-01", ROWS, expected_sum(3)),
        ("2026-01-02", ROWS, expected_sum(1)),
    ]
    statements = [r["sql"] or "" for r in project.server.requests()]
    assert any("REPLACE PARTITION" in sql for sql in statements)
    staging = project.scalar(
        f"SELECT count() FROM system.tables WHERE database = '{project.database}' "
        "AND name LIKE '%staging%'"
    )
    assert staging == 0
