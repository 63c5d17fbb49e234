"""ClickHouse loaders gather batches into large inserts and run some at once (chDB).

Background merges are stopped on the tables, so every insert stays one part and the
part count tells how many inserts there were.
"""

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from runner import ConfigError, FatalError, clickhouse_append, clickhouse_upsert, el
from runner.settings import Settings
from runner.warehouse.client import Warehouse

EVENTS = (
    "CREATE TABLE {t} (id UInt64, ts DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY id "
    "SETTINGS non_replicated_deduplication_window = 100"
)
LATEST = (
    "CREATE TABLE {t} (id UInt64, name String, version UInt32) "
    "ENGINE = ReplacingMergeTree(version) ORDER BY id"
)
DAY = datetime(2026, 1, 1, tzinfo=UTC)


def ids(start, count):
    return pa.record_batch(
        {
            "id": pa.array(range(start, start + count), pa.uint64()),
            "ts": pa.array([DAY] * count, pa.timestamp("ms", "UTC")),
        }
    )


def parts(warehouse, table):
    return warehouse.query_rows(
        "SELECT count() FROM system.parts WHERE database = {db:String} AND table = {t:String} "
        "AND active",
        {"db": warehouse.database, "t": table},
    )[0][0]


@pytest.fixture
def events(warehouse):
    warehouse.command(EVENTS.format(t=warehouse.table("events")))
    warehouse.command(f"SYSTEM STOP MERGES {warehouse.table('events')}")
    return "events"


@pytest.fixture
def own_connections(runner_settings: Settings, make_context):
    """A context whose concurrent inserts open real connections of their own."""
    opened = []

    def build(settings, **overrides):
        from runner.pipeline.context import RunResources

        def connect():
            opened.append(Warehouse.connect(settings))
            return opened[-1]

        return make_context(settings=settings, resources=RunResources(connect=connect), **overrides)

    yield build
    for warehouse in opened:
        warehouse.close()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_batches_are_gathered_into_inserts_of_insert_rows(
    warehouse, events, own_connections, runner_settings, threads
):
    settings = runner_settings.model_copy(update={"insert_rows": 250, "insert_threads": threads})
    batches = [ids(i * 100, 100) for i in range(10)]
    el("ev", extract=batches, load=clickhouse_append(events)).run(
        own_connections(settings, pipeline="ev")
    )
    # 300 + 300 + 300 and the rest (100) at the end: four inserts, every row once
    assert parts(warehouse, events) == 4
    assert warehouse.query_rows("SELECT count(), uniqExact(id) FROM events") == [(1000, 1000)]


def test_a_rerun_with_concurrent_inserts_lands_every_row_once(
    warehouse, events, own_connections, runner_settings
):
    settings = runner_settings.model_copy(update={"insert_rows": 100, "insert_threads": 4})
    pipeline = el(
        "ev", extract=[ids(i * 50, 50) for i in range(20)], load=clickhouse_append(events)
    )
    for _ in range(3):  # the same window again: the same inserts with the same tokens
        pipeline.run(own_connections(settings, pipeline="ev"))
    assert warehouse.query_rows("SELECT count(), sum(id) FROM events") == [(1000, sum(range(1000)))]


def test_a_batch_of_another_schema_is_sent_apart(warehouse, events, make_context, runner_settings):
    settings = runner_settings.model_copy(update={"insert_rows": 1000})
    narrow = pa.record_batch({"id": pa.array([900, 901], pa.uint64())})  # ts takes its default
    el("ev", extract=[ids(0, 10), narrow, ids(10, 10)], load=clickhouse_append(events)).run(
        make_context(pipeline="ev", settings=settings)
    )
    assert parts(warehouse, events) == 3
    assert warehouse.query_rows("SELECT count() FROM events") == [(22,)]


def test_a_failed_concurrent_insert_fails_the_run(
    warehouse, events, own_connections, runner_settings
):
    settings = runner_settings.model_copy(update={"insert_rows": 1, "insert_threads": 2})
    # a row the loader's type checks let through but the engine refuses
    warehouse.command(f"ALTER TABLE {warehouse.table(events)} ADD CONSTRAINT no_7 CHECK id != 7")
    batches = [ids(0, 5), ids(7, 1), *(ids(10 + i * 5, 5) for i in range(20))]
    with pytest.raises(FatalError, match="insert into events failed"):
        el("ev", extract=batches, load=clickhouse_append(events)).run(
            own_connections(settings, pipeline="ev")
        )
    # it stopped soon after the failure instead of loading all the rest
    assert warehouse.query_rows("SELECT count() FROM events")[0][0] < 5 + 20 * 5


def test_upsert_keeps_its_inserts_in_order(warehouse, make_context, runner_settings):
    warehouse.command(LATEST.format(t=warehouse.table("latest")))
    settings = runner_settings.model_copy(update={"insert_rows": 1, "insert_threads": 4})

    def named(name):  # the same key and version: the later insert must win
        return pa.record_batch(
            {
                "id": pa.array([1], pa.uint64()),
                "name": [name],
                "version": pa.array([1], pa.uint32()),
            }
        )

    batches = [named(f"v{i}") for i in range(12)]
    el("up", extract=batches, load=clickhouse_upsert("latest")).run(
        make_context(pipeline="up", settings=settings)
    )
    assert warehouse.query_rows("SELECT name FROM latest FINAL") == [("v11",)]


@pytest.mark.parametrize("threads", [0, 17, 1.5, True, "2"])
def test_insert_threads_is_checked_at_declaration(threads):
    with pytest.raises(
        ConfigError,
        match=r"append\(events\): insert_threads: Input should be (a valid integer|greater|less)",
    ):
        clickhouse_append("events", insert_threads=threads)
