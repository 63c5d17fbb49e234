from datetime import UTC, datetime

import pyarrow as pa
import pytest

from runner import ConfigError, clickhouse_append, clickhouse_query, clickhouse_upsert, el
from runner.pipeline.windows import Window

EVENTS = (
    "CREATE TABLE {t} (id UInt64, ts DateTime64(3, 'UTC'), v Float64) ENGINE = MergeTree "
    "ORDER BY id SETTINGS non_replicated_deduplication_window = 100"
)
LATEST = (
    "CREATE TABLE {t} (id UInt64, name String, version UInt32) "
    "ENGINE = ReplacingMergeTree(version) ORDER BY id"
)


def batch(ids, version=1):
    return pa.record_batch(
        {
            "id": pa.array(ids, pa.uint64()),
            "name": [f"n{i}-{version}" for i in ids],
            "version": pa.array([version] * len(ids), pa.uint32()),
        }
    )


def test_append_retried_for_the_same_window_does_not_duplicate(warehouse, make_context):
    warehouse.command(EVENTS.format(t=warehouse.table("events")))
    rows = [{"id": i, "ts": datetime(2026, 1, 1, tzinfo=UTC), "v": i / 2} for i in range(50)]
    settings = make_context().settings.model_copy(update={"batch_rows": 20})
    p = el("ev", extract=rows, load=clickhouse_append("events"))
    for _ in range(3):  # a retried pod runs the same window again
        p.run(make_context(pipeline="ev", settings=settings))
    assert warehouse.query_rows("SELECT count(), sum(id) FROM events") == [(50, sum(range(50)))]
    other = Window(datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC))
    p.run(make_context(pipeline="ev", settings=settings, window=other))
    assert warehouse.query_rows("SELECT count() FROM events") == [(100,)]


def test_upsert_keeps_the_latest_version(warehouse, make_context):
    warehouse.command(LATEST.format(t=warehouse.table("latest")))
    el("v1", extract=[batch([1, 2, 3])], load=clickhouse_upsert("latest")).run(
        make_context(pipeline="v1")
    )
    el("v2", extract=[batch([2, 3], version=2)], load=clickhouse_upsert("latest")).run(
        make_context(pipeline="v2")
    )
    rows = warehouse.query_rows("SELECT id, name FROM latest FINAL ORDER BY id")
    assert rows == [(1, "n1-1"), (2, "n2-2"), (3, "n3-2")]
    unversioned = pa.record_batch({"id": pa.array([1], pa.uint64()), "name": ["x"]})
    with pytest.raises(ConfigError, match="batches need the version column 'version'"):
        el("v3", extract=[unversioned], load=clickhouse_upsert("latest")).run(
            make_context(pipeline="v3")
        )


def test_loaders_check_the_target_table(warehouse, make_context):
    warehouse.command(EVENTS.format(t=warehouse.table("plain")))
    with pytest.raises(ConfigError, match=r"upsert needs a ReplacingMergeTree table.*is MergeTree"):
        el("x", extract=[batch([1])], load=clickhouse_upsert("plain")).run(
            make_context(pipeline="x")
        )
    with pytest.raises(ConfigError, match="does not exist: add a migration"):
        el("x", extract=[batch([1])], load=clickhouse_append("nope")).run(
            make_context(pipeline="x")
        )
    with pytest.raises(ConfigError, match="invalid table"):
        clickhouse_append("bad name")


def test_query_extractor_binds_the_window(warehouse, make_context):
    warehouse.command(EVENTS.format(t=warehouse.table("events")))
    warehouse.insert_arrow(
        "events",
        pa.table(
            {
                "id": pa.array(range(48), pa.uint64()),
                "ts": pa.array(
                    [
                        datetime(2026, 1, 1, h % 24, tzinfo=UTC)
                        if h < 24
                        else datetime(2026, 1, 2, h - 24, tzinfo=UTC)
                        for h in range(48)
                    ],
                    pa.timestamp("ms", "UTC"),
                ),
                "v": [1.0] * 48,
            }
        ),
    )
    source = clickhouse_query(
        "SELECT id FROM events WHERE ts >= {window_start:DateTime64(3, 'UTC')} "
        "AND ts < {window_end:DateTime64(3, 'UTC')} AND v >= {min_v:Float64}",
        {"min_v": 0.5},
    )
    ctx = make_context(
        window=Window(datetime(2026, 1, 1, 6, tzinfo=UTC), datetime(2026, 1, 1, 12, tzinfo=UTC))
    )
    got = pa.Table.from_batches(list(source.extract(ctx))).column("id").to_pylist()
    assert sorted(got) == [6, 7, 8, 9, 10, 11]
    assert source.describe().startswith("clickhouse_query(SELECT id FROM events")
    with pytest.raises(ConfigError, match="reserved for the run window"):
        clickhouse_query("SELECT 1", {"window_start": 1})
    with pytest.raises(ConfigError, match="empty"):
        clickhouse_query("  ")
