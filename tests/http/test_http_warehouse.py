"""The Warehouse client over HTTPS in this process: what it re-sends after a lost answer and
what it does not, errors translated, streams, the state tables."""

from __future__ import annotations

import pyarrow as pa
import pytest

from runner.errors import FatalError, OutcomeUnknownError, WarehouseUnavailableError
from runner.warehouse.client import safe_to_resend

pytestmark = pytest.mark.http


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "  with x AS (SELECT 1) SELECT * FROM x",
        "CREATE TABLE IF NOT EXISTS a.b (x UInt8) ENGINE = Memory",
        "CREATE DATABASE IF NOT EXISTS `a`",
        "DROP TABLE IF EXISTS `a`.`b__staging_0123` SYNC",
        "ALTER TABLE `a`.`t` REPLACE PARTITION ID {p:String} FROM `a`.`s`",
        "ALTER TABLE a.t ON CLUSTER main DROP PARTITION ID '20260101'",
        "ALTER TABLE a.s MODIFY SETTING non_replicated_deduplication_window = 0",
    ],
)
def test_statements_that_may_run_twice(sql):
    assert safe_to_resend(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO a.t VALUES (1)",
        "INSERT INTO a.t SELECT * FROM a.s",
        "CREATE TABLE a.s AS a.t",
        "DROP TABLE a.t",
        "ALTER TABLE a.t UPDATE x = x + 1 WHERE 1",
        "ALTER TABLE a.t DROP PARTITION 1, UPDATE x = x + 1 WHERE 1",
        "ALTER TABLE a.t ADD COLUMN y UInt8",
        "SELECT 1; INSERT INTO a.t VALUES (1)",
        "TRUNCATE TABLE a.t",
    ],
)
def test_statements_that_must_not_run_twice(sql):
    assert not safe_to_resend(sql)


def test_an_insert_without_token_whose_answer_was_lost_fails_and_lands_once(
    http_warehouse, loopback
):
    table = http_warehouse.table("plain")
    http_warehouse.command(f"CREATE TABLE {table} (a UInt32) ENGINE = MergeTree ORDER BY a")
    loopback.set_faults({"match": "INSERT INTO", "phase": "after", "action": "reset"})
    batch = pa.record_batch({"a": pa.array(range(10), pa.uint32())})
    with pytest.raises(OutcomeUnknownError, match="may have been applied"):
        http_warehouse.insert_arrow("plain", batch)
    assert http_warehouse.query_rows(f"SELECT count() FROM {table}") == [(10,)]


def test_an_insert_with_its_token_is_resent_and_deduplicated(http_warehouse, loopback):
    table = http_warehouse.table("tokened")
    http_warehouse.command(
        f"CREATE TABLE {table} (a UInt32) ENGINE = MergeTree ORDER BY a "
        "SETTINGS non_replicated_deduplication_window = 10"
    )
    loopback.set_faults({"match": "INSERT INTO", "phase": "after", "action": "reset", "times": 2})
    batch = pa.record_batch({"a": pa.array(range(10), pa.uint32())})
    http_warehouse.insert_arrow("tokened", batch, settings={"insert_deduplication_token": "t-1"})
    assert loopback.faults()[0]["hits"] == 2
    assert http_warehouse.query_rows(f"SELECT count() FROM {table}") == [(10,)]


def test_idempotent_statements_and_reads_are_resent(http_warehouse, loopback):
    loopback.set_faults(
        {"match": "CREATE TABLE IF NOT EXISTS", "phase": "after", "action": "reset"},
        {"match": "SELECT 41 + 1", "phase": "after", "action": "reset"},
    )
    http_warehouse.command(
        f"CREATE TABLE IF NOT EXISTS {http_warehouse.table('again')} (a UInt8) ENGINE = Memory"
    )
    assert http_warehouse.query_rows("SELECT 41 + 1") == [(42,)]
    assert [rule["hits"] for rule in loopback.faults()] == [1, 1]


def test_a_503_is_retried_for_any_statement(http_warehouse, loopback):
    table = http_warehouse.table("after_503")
    http_warehouse.command(f"CREATE TABLE {table} (a UInt8) ENGINE = MergeTree ORDER BY a")
    loopback.set_faults({"match": "INSERT INTO", "phase": "before", "action": "status"})
    http_warehouse.command(f"INSERT INTO {table} VALUES (1)")  # answered, so never ran
    assert http_warehouse.query_rows(f"SELECT count() FROM {table}") == [(1,)]


def test_errors_keep_the_servers_code_and_message(http_warehouse):
    with pytest.raises(FatalError, match=r"query failed: .*Code: 60.*UNKNOWN_TABLE"):
        http_warehouse.query_rows("SELECT * FROM no_such_table")
    with pytest.raises(FatalError, match="Multi-statements are not allowed"):
        http_warehouse.command("SELECT 1; SELECT 2")


def test_a_server_that_keeps_resetting_is_transient(http_warehouse, loopback):
    loopback.set_faults({"match": "SELECT 7", "phase": "before", "action": "reset", "times": -1})
    with pytest.raises(WarehouseUnavailableError) as info:
        http_warehouse.query_rows("SELECT 7")
    assert not isinstance(info.value, OutcomeUnknownError)
    assert loopback.faults()[0]["hits"] >= http_warehouse.retry.attempts


def test_streams_and_arrow_results_over_https(http_warehouse):
    with http_warehouse.stream_arrow(
        "SELECT number AS n FROM numbers(200000)", max_rows=10000
    ) as batches:
        sizes = [b.num_rows for b in batches]
    assert sum(sizes) == 200000
    assert max(sizes) <= 10000
    table = http_warehouse.query_arrow("SELECT toDate('2026-01-01') AS d, 'x' AS s")
    assert table.column("s").to_pylist() == ["x"]
