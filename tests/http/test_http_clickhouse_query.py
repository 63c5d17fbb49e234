"""Reading from ClickHouse over HTTPS: a streamed query is loaded whole, and a query that
fails after its first blocks fails the run - never a partial result loaded as complete."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.http
PIPELINE = """
from runner import clickhouse_append, el
from runner.tools.extract.clickhouse import clickhouse_query

pipeline = el(
    "copy",
    extract=clickhouse_query(
        "SELECT number AS n, throwIf(number = {{fail_at:UInt64}}) AS boom "
        "FROM numbers(300000)",
        {{"fail_at": {fail_at}}},
    ),
    load=clickhouse_append("copied"),
)
"""
MIGRATION = {
    "0001_copied.sql": (
        "CREATE TABLE {{database}}.copied (n UInt64, boom UInt8) ENGINE = MergeTree ORDER BY n;"
    )
}


@pytest.mark.slow
@pytest.mark.parametrize(("fail_at", "fails"), [(10**9, False), (250_000, True)])
def test_a_streamed_query_is_loaded_whole_or_fails_the_run(http_project, fail_at, fails):
    project = http_project(
        pipelines={"copy_pipeline.py": PIPELINE.format(fail_at=fail_at)}, migrations=MIGRATION
    )
    project.runner("migrate")
    result = project.runner("run", "copy", check=False, RUNNER_BATCH_ROWS="10000")
    if not fails:
        assert result.returncode == 0, result.stderr
        assert project.scalar("SELECT count() FROM copied") == 300_000
        return
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "ClickHouse stopped the result midway with an error (query_id " in line
    assert "system.query_log" in line
    finished = json.loads(result.stdout.strip().splitlines()[-1])
    assert finished["status"] == "failed"
