import os
import time
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
from structlog.testing import capture_logs

from runner import ConfigError, el
from runner.errors import FatalError, RetriableError
from runner.pipeline.windows import Window
from runner.tools.load.replace_window import ClickHouseReplaceWindow, clickhouse_replace_window

DAILY = (
    "CREATE TABLE {t} (id UInt64, ts DateTime64(3, 'UTC'), v String) ENGINE = MergeTree "
    "PARTITION BY toDate(ts) ORDER BY id SETTINGS non_replicated_deduplication_window = 100"
)
MONTHLY = (
    "CREATE TABLE {t} (id UInt64, ts DateTime64(3, 'UTC'), v String) ENGINE = MergeTree "
    "PARTITION BY toYYYYMM(ts) ORDER BY id"
)


def day(n: int, hour: int = 0) -> datetime:
    return datetime(2026, 1, n, hour, tzinfo=UTC)


def window(first: int, last: int | None = None) -> Window:
    """Days ``first`` to ``last`` (inclusive) of January 2026."""
    return Window(day(first), day(last or first) + timedelta(days=1))


def rows(ids, when, v="x"):
    """A batch with the rows ``ids``, spread over the hours of ``when``'s day."""
    return pa.record_batch(
        {
            "id": pa.array(ids, pa.uint64()),
            "ts": pa.array(
                [when + timedelta(hours=i % 24) for i in range(len(ids))],
                pa.timestamp("ms", "UTC"),
            ),
            "v": [v] * len(ids),
        }
    )


def content(warehouse, table="events"):
    """{day: sorted ids} of the table."""
    got: dict[int, list[int]] = {}
    for ident, ts in warehouse.query_rows(f"SELECT id, ts FROM {table} ORDER BY id"):
        got.setdefault(ts.day, []).append(ident)
    return got


def staging_tables(warehouse):
    return warehouse.query_rows(
        "SELECT name FROM system.tables WHERE database = {db:String} AND name LIKE '%staging%'",
        {"db": warehouse.database},
    )


def load(make_context, extract, win, table="events", loader_options=None, **options):
    loader = clickhouse_replace_window(table, time_column="ts", **(loader_options or {}))
    p = el("ev", extract=extract, load=loader)
    p.run(make_context(pipeline="ev", window=win, **options))


def test_rerun_replaces_only_its_window(warehouse, make_context):
    warehouse.command(DAILY.format(t=warehouse.table("events")))
    load(make_context, [rows([1, 2, 3], day(1))], window(1))
    assert content(warehouse) == {1: [1, 2, 3]}
    load(make_context, [rows([20, 21], day(2))], window(2))
    with capture_logs() as logs:
        load(make_context, [rows([10, 11], day(1), "new")], window(1))
    assert content(warehouse) == {1: [10, 11], 2: [20, 21]}
    assert warehouse.query_rows(
        "SELECT DISTINCT v FROM events WHERE toDate(ts) = '2026-01-01'"
    ) == [("new",)]
    replaced = [e for e in logs if e["event"] == "partition replaced"]
    assert [(e["partition"], e["rows"], e["replaced_rows"]) for e in replaced] == [
        ("20260101", 2, 3)
    ]
    assert staging_tables(warehouse) == []


def test_multi_day_window_and_days_the_new_data_lacks(warehouse, make_context):
    warehouse.command(DAILY.format(t=warehouse.table("events")))
    for n in (1, 2, 3, 4):
        load(make_context, [rows([n * 10, n * 10 + 1], day(n))], window(n))
    # the re-run of days 1-3 has nothing for day 2: day 2 must end up empty
    settings = make_context().settings.model_copy(update={"batch_rows": 2})
    source = [rows([100, 101, 102], day(1)), rows([300], day(3, 5))]
    load(make_context, source, window(1, 3), settings=settings)
    assert content(warehouse) == {1: [100, 101, 102], 3: [300], 4: [40, 41]}
    # an empty source clears the whole window, and only the window, when allowed
    with pytest.raises(FatalError, match=r"0 rows for the window .* holds 4 rows now"):
        load(make_context, [], window(1, 3))
    assert content(warehouse) == {1: [100, 101, 102], 3: [300], 4: [40, 41]}
    load(make_context, [], window(1, 3), loader_options={"allow_empty": True})
    assert content(warehouse) == {4: [40, 41]}
    load(make_context, [], window(10))  # nothing there, nothing to do
    assert content(warehouse) == {4: [40, 41]}
    assert staging_tables(warehouse) == []


def test_row_outside_the_window_is_fatal_and_changes_nothing(warehouse, make_context):
    warehouse.command(DAILY.format(t=warehouse.table("events")))
    load(make_context, [rows([1, 2], day(1))], window(1))
    settings = make_context().settings.model_copy(update={"batch_rows": 2})
    late = pa.record_batch(
        {
            "id": pa.array([9], pa.uint64()),
            "ts": pa.array([day(2)], pa.timestamp("ms", "UTC")),  # the excluded end
            "v": ["late"],
        }
    )
    with pytest.raises(
        FatalError,
        match=r"a row has ts = 2026-01-02T00:00:00\+00:00, outside the run window "
        r"\[2026-01-01T00:00:00\+00:00, 2026-01-02T00:00:00\+00:00\)",
    ):
        load(make_context, [rows([5, 6, 7, 8], day(1)), late], window(1), settings=settings)
    assert content(warehouse) == {1: [1, 2]}
    assert staging_tables(warehouse) == []


class FailingAfter(ClickHouseReplaceWindow):
    """Writes two batches into staging, checking the target does not see them, then fails."""

    def __init__(self, warehouse, **kwargs):
        super().__init__("events", time_column="ts", **kwargs)
        self.warehouse = warehouse
        self.written = 0

    def write(self, batch, ctx):
        if self.written == 2:
            raise RetriableError("network went away")
        super().write(batch, ctx)
        self.written += 1
        staged = self.warehouse.query_rows(f"SELECT count() FROM {ctx.step_state(self)['staging']}")
        assert staged == [(self.written * 2,)]
        assert content(self.warehouse) == {1: [1, 2, 3]}  # staging is not the target


def test_failure_mid_stream_leaves_the_target_untouched(warehouse, make_context, runner_settings):
    warehouse.command(DAILY.format(t=warehouse.table("events")))
    load(make_context, [rows([1, 2, 3], day(1))], window(1))
    loader = FailingAfter(warehouse, insert_threads=1)
    batches = [rows([10 + i, 20 + i], day(1, i)) for i in range(4)]
    one_batch_per_insert = runner_settings.model_copy(update={"insert_rows": 1})
    ctx = make_context(pipeline="ev", window=window(1), settings=one_batch_per_insert)
    with pytest.raises(RetriableError, match="network went away"):
        el("ev", extract=batches, load=loader).run(ctx)
    assert loader.written == 2
    assert content(warehouse) == {1: [1, 2, 3]}
    assert staging_tables(warehouse) == []


def test_window_must_cover_whole_partitions(warehouse, make_context):
    warehouse.command(MONTHLY.format(t=warehouse.table("events")))
    warehouse.insert_arrow("events", rows([5], day(5)))
    with pytest.raises(
        FatalError,
        match=r"partition 202601 also holds 1 rows outside the window .*must cover whole "
        r"partitions, but PARTITION BY toYYYYMM\(ts\) is coarser.*PARTITION BY toDate\(ts\)",
    ):
        load(make_context, [rows([1], day(1))], window(1))
    assert content(warehouse) == {5: [5]}
    assert staging_tables(warehouse) == []
    # the check is on data: a month without other days loads (and would block the next day)
    feb = Window(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC))
    load(make_context, [rows([7], datetime(2026, 2, 1, tzinfo=UTC))], feb)
    assert warehouse.query_rows("SELECT id FROM events ORDER BY id") == [(5,), (7,)]


def test_open_checks_the_target(warehouse, make_context):
    warehouse.command(
        f"CREATE TABLE {warehouse.table('flat')} (id UInt64, ts DateTime) "
        "ENGINE = MergeTree ORDER BY id"
    )
    warehouse.command(
        f"CREATE TABLE {warehouse.table('named')} (id UInt64, ts String) "
        "ENGINE = MergeTree PARTITION BY ts ORDER BY id"
    )
    warehouse.command(f"CREATE TABLE {warehouse.table('mem')} (ts DateTime) ENGINE = Memory")
    db = warehouse.database
    cases = {
        "flat": f"needs a partitioned table, but {db}.flat has no PARTITION BY: .*toDate\\(ts\\)",
        "named": f"column {db}.named.ts is String; it must be a Date",
        "mem": f"replace_window needs a MergeTree table, but {db}.mem is Memory",
        "nope": "does not exist",
    }
    for table, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            load(make_context, [rows([1], day(1))], window(1), table=table)
    with pytest.raises(ConfigError, match="has no column 'at'"):
        el("x", extract=[], load=clickhouse_replace_window("named", time_column="at")).run(
            make_context(pipeline="x")
        )
    with pytest.raises(ConfigError, match="invalid time column"):
        clickhouse_replace_window("events", time_column="a b")
    with pytest.raises(ConfigError, match="invalid table"):
        clickhouse_replace_window("bad name", time_column="ts")
    with pytest.raises(ConfigError, match="invalid staging table name"):
        clickhouse_replace_window("t" * 190, time_column="ts")
    assert staging_tables(warehouse) == []
    loader = clickhouse_replace_window("analytics.events", time_column="ts")
    assert (loader.name, loader.describe()) == (
        "replace_window",
        "replace_window(analytics.events by ts)",
    )


@pytest.mark.parametrize(
    ("arrow_type", "values", "shown"),
    [
        (pa.timestamp("ms"), (datetime(2026, 1, 1, 23, 59), datetime(2025, 12, 31, 23, 59, 59)),
         "2025-12-31T23:59:59"),
        (pa.timestamp("s", "Europe/Paris"), (day(1, 12), day(2)), r"2026-01-02T01:00:00\+01:00"),
        (pa.timestamp("ns", "UTC"), (day(1), 1767225599999999999),  # 1 ns before the window
         r"2025-12-31T23:59:59.999999999\+00:00"),
    ],
)  # fmt: skip
def test_window_check_handles_timestamp_kinds(warehouse, make_context, arrow_type, values, shown):
    warehouse.command(DAILY.format(t=warehouse.table("events")))
    inside, outside = values

    def batch(when):
        if isinstance(when, int):
            ts = pa.array([when], pa.int64()).view(arrow_type)
        else:
            ts = pa.array([when], arrow_type)
        return pa.record_batch({"id": pa.array([1], pa.uint64()), "ts": ts, "v": ["x"]})

    load(make_context, [batch(inside)], window(1))
    assert warehouse.query_rows("SELECT count() FROM events") == [(1,)]
    with pytest.raises(FatalError, match=f"ts = {shown}"):
        load(make_context, [batch(outside)], window(1))
    with pytest.raises(FatalError, match=r"column 'ts': None does not fit DateTime64.*Nullable"):
        load(make_context, [pa.record_batch({"ts": pa.array([None], arrow_type)})], window(1))
    with pytest.raises(FatalError, match="column 'ts' is string, not a timestamp"):
        load(make_context, [{"id": 1, "ts": "2026-01-01"}], window(1))
    with pytest.raises(ConfigError, match="batches need the time column 'ts'"):
        load(make_context, [{"id": 1}], window(1))
    assert warehouse.query_rows("SELECT count() FROM events") == [(1,)]


def test_date_column(warehouse, make_context):
    warehouse.command(
        f"CREATE TABLE {warehouse.table('daily')} (d Date, n UInt32) ENGINE = MergeTree "
        "PARTITION BY d ORDER BY n"
    )

    def batch(*days):
        return pa.record_batch(
            {"d": pa.array([date(2026, 1, x) for x in days], pa.date32()), "n": [1] * len(days)}
        )

    def run(source, win):
        loader = clickhouse_replace_window("daily", time_column="d")
        el("d", extract=source, load=loader).run(make_context(pipeline="d", window=win))

    run([batch(1, 2, 2)], window(1, 2))
    run([batch(3)], window(3))
    run([batch(2)], window(1, 2))  # day 1 cleared, day 2 replaced, day 3 untouched
    assert warehouse.query_rows("SELECT d, count() FROM daily GROUP BY d ORDER BY d") == [
        (date(2026, 1, 2), 1),
        (date(2026, 1, 3), 1),
    ]
    with pytest.raises(FatalError, match="d = 2026-01-04, outside"):
        run([batch(4)], window(3))


def test_identical_batches_are_all_kept(warehouse, make_context):
    """The table keeps a deduplication log; equal batches are still distinct rows."""
    warehouse.command(DAILY.format(t=warehouse.table("events")))
    same = rows([1, 2], day(1))
    for deduplicate in (False, True):
        loader = clickhouse_replace_window("events", time_column="ts", deduplicate=deduplicate)
        el("ev", extract=[same, same, same], load=loader).run(
            make_context(pipeline="ev", window=window(1))
        )
        assert warehouse.query_rows("SELECT count() FROM events") == [(6,)]


def test_stale_staging_tables_are_dropped(warehouse, make_context):
    warehouse.command(DAILY.format(t=warehouse.table("events")))
    stale, fresh, other = (
        "events__staging_0123456789ab",
        "events__staging_ba9876543210",
        "events__staging_keep",
    )
    for name in (stale, fresh, other):
        warehouse.command(f"CREATE TABLE {warehouse.table(name)} AS {warehouse.table('events')}")
    two_days_ago = time.time() - 2 * 86400
    for name in (stale, other):
        (path,) = warehouse.query_rows(
            "SELECT metadata_path FROM system.tables WHERE database = {db:String} "
            "AND name = {t:String}",
            {"db": warehouse.database, "t": name},
        )[0]
        os.utime(warehouse.target.path / path, (two_days_ago, two_days_ago))
    with capture_logs() as logs:
        load(make_context, [rows([1], day(1))], window(1))
    assert sorted(r[0] for r in staging_tables(warehouse)) == [fresh, other]
    dropped = [e["table"] for e in logs if e["event"] == "stale staging table dropped"]
    assert dropped == [f"{warehouse.database}.{stale}"]
    assert content(warehouse) == {1: [1]}
