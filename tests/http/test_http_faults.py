"""Transport faults between the runner and ClickHouse: a 503, a connection reset while an
insert is sent or after it landed, an answer slower than RUNNER_QUERY_TIMEOUT, a wrong
password.  Each run is a real `runner` process over HTTPS; the data must come out exact."""

from __future__ import annotations

import json

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


def insert_into(project, table):
    """The fault match for the loaders' inserts into ``table`` (the statement in the URL)."""
    return f"INSERT INTO `{project.database}`.`{table}"  # a prefix of the quoted name


def retried(result):
    return [
        json.loads(line)
        for line in result.stdout.splitlines()
        if '"transient warehouse error; retrying"' in line
    ]


def test_a_503_before_an_insert_is_retried_and_the_rows_land_once(project):
    project.server.set_faults(
        {
            "match": insert_into(project, "t_append"),
            "phase": "before",
            "action": "status",
            "status": 503,
        }
    )
    result = project.runner("run", "load_append", *WINDOW, **small_batches())
    assert project.server.faults()[0]["hits"] == 1
    assert len(retried(result)) == 1
    assert project.rows("SELECT count(), sum(v) FROM t_append") == [(ROWS, expected_sum())]


def test_a_reset_while_the_insert_body_is_sent_is_retried(project):
    project.server.set_faults(
        {"match": insert_into(project, "t_append"), "phase": "body", "action": "reset", "times": 2}
    )
    result = project.runner("run", "load_append", *WINDOW, **small_batches())
    assert project.server.faults()[0]["hits"] == 2
    assert len(retried(result)) == 2
    assert project.rows("SELECT count(), sum(v) FROM t_append") == [(ROWS, expected_sum())]


def test_a_reset_after_the_insert_landed_is_resent_with_its_token_and_lands_once(project):
    project.server.set_faults(
        {"match": insert_into(project, "t_append"), "phase": "after", "action": "reset", "times": 3}
    )
    result = project.runner("run", "load_append", *WINDOW, **small_batches())
    assert project.server.faults()[0]["hits"] == 3
    assert len(retried(result)) == 3
    assert project.rows("SELECT count(), uniqExact(id), sum(v) FROM t_append") == [
        (ROWS, ROWS, expected_sum())
    ]


def test_an_answer_slower_than_the_query_timeout_is_resent_and_lands_once(project):
    project.server.set_faults(
        {
            "match": insert_into(project, "t_append"),
            "phase": "after",
            "action": "delay",
            "seconds": 4,
        }
    )
    result = project.runner(
        "run", "load_append", *WINDOW, RUNNER_QUERY_TIMEOUT="2", **small_batches()
    )
    assert "timed out" in retried(result)[0]["error"].lower()
    assert project.rows("SELECT count(), sum(v) FROM t_append") == [(ROWS, expected_sum())]


def test_a_server_that_stays_slow_fails_the_run_as_transient(project):
    project.server.set_faults(
        {
            "match": insert_into(project, "t_append"),
            "phase": "before",
            "action": "delay",
            "seconds": 3,
            "times": -1,
        }
    )
    result = project.runner(
        "run",
        "load_append",
        *WINDOW,
        check=False,
        RUNNER_QUERY_TIMEOUT="1",
        RUNNER_RETRY_ATTEMPTS="2",
        RUNNER_RETRY_MAX_WAIT_SECONDS="0.2",
    )
    assert result.returncode == 75, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "t_append" in line
    assert "timed out" in line.lower()
    assert "Traceback" not in result.stderr
    [[status]] = project.rows(
        f"SELECT status FROM `{project.state_database}`.runs FINAL WHERE pipeline = 'load_append'"
    )
    assert status == "failed"


@pytest.mark.slow
def test_an_insert_into_staging_whose_answer_was_lost_is_not_resent_blindly(project):
    # Staging inserts carry no deduplication token: a re-send after the first one landed
    # would put its rows twice into the partitions swapped into the target.
    project.server.set_faults(
        {
            "match": insert_into(project, "t_replace__staging_"),
            "phase": "after",
            "action": "reset",
        }
    )
    first = project.runner("run", "load_replace", *WINDOW, check=False, **small_batches())
    assert first.returncode == 75, first.stderr
    assert "may have been applied" in first.stderr
    assert project.scalar("SELECT count() FROM t_replace") == 0  # nothing swapped in
    project.runner("run", "load_replace", *WINDOW, **small_batches())
    assert project.rows("SELECT count(), uniqExact(id), sum(v) FROM t_replace") == [
        (ROWS, ROWS, expected_sum())
    ]


def test_a_migration_statement_whose_answer_was_lost_is_not_run_twice(http_project):
    project = http_project(
        migrations={
            "0001_seed.sql": (
                "CREATE TABLE {{database}}.seed (x UInt8) ENGINE = MergeTree ORDER BY x;\n"
                "INSERT INTO {{database}}.seed VALUES (1);\n"
            )
        }
    )
    project.server.set_faults(
        {"match": f"INSERT INTO `{project.database}`.seed", "phase": "after", "action": "reset"}
    )
    result = project.runner("migrate", check=False)
    assert result.returncode == 75, result.stderr
    assert "0001_seed.sql:2" in result.stderr
    assert "may have been applied" in result.stderr
    assert project.scalar("SELECT count() FROM seed") == 1  # not a second time behind our back
