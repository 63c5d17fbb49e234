"""Loaders never lose, duplicate, wipe or silently alter data.

Each test replays an attack from the loader issues against the real embedded engine
(chDB): parallel backfill windows sharing one loader object, rows counted as loaded
that never landed, out-of-range values wrapped or clamped by the engine, an empty source
wiping a window, staging tables left by killed runs, quarantined rows that gained keys.
Where the attack was a command line, the test runs real ``runner`` subprocesses.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runner import clickhouse_append, clickhouse_upsert, el, etl
from runner.errors import ConfigError, FatalError
from runner.pipeline.windows import Window
from runner.tools.load._writers import JsonLinesFile
from runner.tools.load.files import JsonLinesLoader, write_jsonl, write_parquet
from runner.tools.load.replace_window import ClickHouseReplaceWindow, clickhouse_replace_window

REPO = Path(__file__).resolve().parents[2]
DAY = datetime(2026, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------ real subprocesses


def write_project(root: Path, pipelines: dict[str, str], migration: str) -> Path:
    """A project with the given pipeline modules and one migration file."""
    (root / "pipelines").mkdir(parents=True, exist_ok=True)
    (root / "migrations").mkdir(exist_ok=True)
    for name, body in pipelines.items():
        (root / "pipelines" / name).write_text(textwrap.dedent(body))
    (root / "migrations" / "0001_tables.sql").write_text(textwrap.dedent(migration))
    return root


def env_for(project: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_LOG_FORMAT": "json",
        "RUNNER_LOCK_BACKEND": "file",
        **extra,
    }


def runner(project: Path, *args: str, check: bool = True, **extra: str):
    result = subprocess.run(
        [sys.executable, "-m", "runner", *args],
        env=env_for(project, **extra),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=project,
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def query(project: Path, sql: str) -> list[list]:
    """Rows of ``sql`` on the project's warehouse (another process: chDB admits one)."""
    code = (
        "import sys, json; from runner.settings import load_settings; "
        "from runner.warehouse.client import Warehouse; "
        "w = Warehouse.connect(load_settings()); "
        "print(json.dumps(w.query_rows(sys.argv[1]), default=str))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, sql],
        env=env_for(project),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=project,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # after any log line


def last_event(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


# ----------------------------------------------- 1. parallel backfill with file loaders


@pytest.mark.slow
def test_parallel_backfill_of_the_example_exports_writes_every_window_once(tmp_path):
    """The shipped example: every window's files exist and hold that window's rows only."""
    project = tmp_path / "shop"
    shutil.copytree(REPO / "pipelines", project / "pipelines")
    shutil.copytree(REPO / "migrations", project / "migrations")
    runner(project, "migrate")
    window = ["--start", "2026-01-01", "--end", "2026-01-08"]
    runner(project, "run", "events", *window)
    runner(project, "run", "customers", *window)
    # whole scheduled windows (01:30 to 01:30), so the backfill is not widened past the data
    scheduled = ["--start", "2026-01-01T01:30:00", "--end", "2026-01-07T01:30:00"]
    ran = runner(project, "backfill", "run", "exports", *scheduled, "--parallelism", "4")
    finished = [json.loads(line) for line in ran.stdout.splitlines() if "window finished" in line]
    assert len(finished) == 6
    assert {f["status"] for f in finished} == {"succeeded"}, finished

    [[customers]] = query(project, "SELECT count() FROM analytics.customers FINAL")
    revenue = query(
        project,
        "SELECT toString(day), count() FROM analytics.daily_revenue FINAL GROUP BY day ORDER BY day",
    )
    per_day = dict(revenue)
    exports = project / "exports" / "exports"
    runs = query(
        project,
        "SELECT window_start, rows_loaded, steps FROM pipeline_runner.runs FINAL "
        "WHERE pipeline = 'exports' AND status = 'succeeded' ORDER BY window_start",
    )
    assert len(runs) == 6
    for window_start, rows_loaded, steps in runs:
        start = datetime.fromisoformat(window_start)
        folder = exports / start.strftime("%Y%m%dT%H%M%S")
        table = pq.read_table(folder / "daily_revenue.parquet")
        days = {d.isoformat() for d in table.column("day").to_pylist()}
        assert days == {start.date().isoformat()}  # its own day, no other window's rows
        assert table.num_rows == per_day[start.date().isoformat()]
        with gzip.open(folder / "customers.jsonl.gz", "rt") as lines:
            assert sum(1 for _ in lines) == customers
        counted = json.loads(steps)
        assert counted["export_revenue"]["rows_loaded"] == table.num_rows
        assert counted["export_customers"]["rows_loaded"] == customers
        assert rows_loaded == sum(step["rows_loaded"] for step in counted.values())
    assert sorted(p.name for p in exports.iterdir()) == sorted(
        datetime.fromisoformat(w).strftime("%Y%m%dT%H%M%S") for w, _, _ in runs
    )
    assert not list(exports.rglob(".*.tmp"))  # no temporary file left behind
    again = runner(project, "backfill", "plan", "exports", *scheduled)
    assert "0 to run" in again.stdout


def test_concurrent_windows_of_one_pipeline_object_keep_their_own_data(
    warehouse, make_context, tmp_path, monkeypatch
):
    """Eight windows of one pipeline object at once: each file and table gets its own rows."""
    monkeypatch.chdir(tmp_path)
    warehouse.command(
        f"CREATE TABLE {warehouse.table('facts')} (day Date, id UInt32) ENGINE = MergeTree "
        "PARTITION BY day ORDER BY id"
    )
    warehouse.command(
        f"CREATE TABLE {warehouse.table('log')} (day Date, id UInt32) ENGINE = MergeTree "
        "ORDER BY id SETTINGS non_replicated_deduplication_window = 100"
    )

    def rows(ctx):
        day = ctx.window.start.date()
        for chunk in range(5):  # several batches, each a separate insert and file write
            time.sleep(0.01)
            yield [{"day": day, "id": day.day * 1000 + chunk * 10 + i} for i in range(10)]

    settings = make_context().settings.model_copy(update={"insert_rows": 10, "batch_rows": 10})
    pipelines = [
        el("to_jsonl", extract=rows, load=write_jsonl("out/{window_start}.jsonl")),
        el("to_parquet", extract=rows, load=write_parquet("out/{window_start}.parquet")),
        el("to_append", extract=rows, load=clickhouse_append("log")),
        el("to_replace", extract=rows, load=clickhouse_replace_window("facts", time_column="day")),
    ]
    errors: list[BaseException] = []

    def run(pipeline, n):
        window = Window(DAY + timedelta(days=n), DAY + timedelta(days=n + 1))
        try:
            pipeline.run(make_context(pipeline=pipeline.name, window=window, settings=settings))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p, n)) for p in pipelines for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for n in range(8):
        day = (DAY + timedelta(days=n)).date()
        expected = [day.day * 1000 + c * 10 + i for c in range(5) for i in range(10)]
        name = f"out/{day:%Y%m%d}T000000"
        jsonl = [json.loads(line)["id"] for line in Path(f"{name}.jsonl").read_text().splitlines()]
        assert sorted(jsonl) == expected
        assert sorted(pq.read_table(f"{name}.parquet").column("id").to_pylist()) == expected
        for table in ("facts", "log"):
            got = warehouse.query_rows(
                f"SELECT id FROM {table} WHERE day = {{d:Date}} ORDER BY id", {"d": day}
            )
            assert [r[0] for r in got] == expected, table


def every_tool(tmp_path: Path) -> dict[str, object]:
    """One of every ready-made tool (the HTTP source has its own suite)."""
    import pyarrow.compute as pc
    from pydantic import BaseModel

    from runner.tools.extract.clickhouse import clickhouse_query
    from runner.tools.extract.files import read_csv, read_jsonl, read_parquet
    from runner.tools.extract.python import from_iterable
    from runner.tools.transform.columns import cast, drop, rename, select
    from runner.tools.transform.compute import where, with_columns
    from runner.tools.transform.dedupe import dedupe
    from runner.tools.transform.rows import filter_rows, map_rows
    from runner.tools.transform.validate import validate

    class Row(BaseModel):
        id: int
        day: date

    (tmp_path / "in.csv").write_text("id,day\n1,2026-01-01\n2,2026-01-01\n")
    (tmp_path / "in.jsonl").write_text('{"id": 1, "day": "2026-01-01"}\n')
    pq.write_table(pa.table({"id": [1], "day": [date(2026, 1, 1)]}), tmp_path / "in.parquet")
    return {
        "read_csv": read_csv(str(tmp_path / "in.csv")),
        "read_jsonl": read_jsonl(str(tmp_path / "in.jsonl")),
        "read_parquet": read_parquet(str(tmp_path / "in.parquet")),
        "clickhouse_query": clickhouse_query("SELECT 1 AS id, toDate('2026-01-01') AS day"),
        "from_iterable": from_iterable(lambda: [{"id": 1, "day": date(2026, 1, 1)}]),
        "rename": rename({"id": "id2"}),
        "rename_back": rename({"id2": "id"}),
        "select": select("id", "day"),
        "drop": drop("nothing", missing_ok=True),
        "cast": cast({"id": pa.int64()}),
        "with_columns": with_columns(id=pc.field("id") + 0),
        "where": where(pc.field("id") > 0),
        "map_rows": map_rows(lambda row: row),
        "filter_rows": filter_rows(lambda row: True),
        "validate": validate(Row, on_error="skip", max_invalid=5),
        "dedupe": dedupe("id"),
        "append": clickhouse_append("facts", on_invalid="quarantine"),
        "upsert": clickhouse_upsert("latest"),
        "replace_window": clickhouse_replace_window("daily", time_column="day"),
        "write_jsonl": write_jsonl(str(tmp_path / "out/{window_start}.jsonl")),
        "write_parquet": write_parquet(str(tmp_path / "out/{window_start}.parquet")),
    }


SCALARS = (str, bytes, int, float, bool, type(None), Path)


def snapshot(value: object, depth: int = 0) -> object:
    """What a step holds: scalars as they are, containers and the framework's own objects
    looked into, anything else (models, locks, Arrow expressions) by identity."""
    if isinstance(value, SCALARS):
        return value
    inner: object = None
    if depth > 4:
        pass
    elif isinstance(value, dict):
        inner = [(k, snapshot(v, depth + 1)) for k, v in value.items()]
    elif isinstance(value, list | tuple | set | frozenset):
        inner = [snapshot(v, depth + 1) for v in value]
    elif type(value).__module__.startswith("runner.") and hasattr(value, "__dict__"):
        inner = snapshot(vars(value), depth + 1)
    return (type(value).__name__, id(value), inner)


def test_no_tool_keeps_per_run_state_on_itself(warehouse, make_context, tmp_path):
    """Audit: a run leaves every step object as it found it (state lives in the context)."""
    warehouse.command(
        f"CREATE TABLE {warehouse.table('facts')} (id Int64, day Date) ENGINE = MergeTree "
        "ORDER BY id"
    )
    warehouse.command(
        f"CREATE TABLE {warehouse.table('latest')} (id Int64, day Date) "
        "ENGINE = ReplacingMergeTree(day) ORDER BY id"
    )
    warehouse.command(
        f"CREATE TABLE {warehouse.table('daily')} (id Int64, day Date) ENGINE = MergeTree "
        "PARTITION BY day ORDER BY id"
    )
    tools = every_tool(tmp_path)
    extractors = ["read_csv", "read_jsonl", "read_parquet", "clickhouse_query", "from_iterable"]
    transforms = [
        tools[name]
        for name in (
            "rename", "rename_back", "select", "drop", "cast", "with_columns", "where",
            "map_rows", "filter_rows", "validate", "dedupe",
        )
    ]  # fmt: skip
    loaders = ["append", "upsert", "replace_window", "write_jsonl", "write_parquet"]
    before = {name: snapshot(tool) for name, tool in tools.items()}
    for source, loader in zip(extractors, loaders, strict=True):
        pipeline = etl(f"{source}_{loader}", extract=tools[source], transform=transforms,
                       load=tools[loader])  # fmt: skip
        ctx = make_context(pipeline=pipeline.name)
        pipeline.run(ctx)
        assert ctx.node_stats.rows_loaded > 0, pipeline.name
    changed = [name for name, tool in tools.items() if snapshot(tool) != before[name]]
    assert changed == []


# --------------------------------------------------- a run is succeeded only if confirmed


class LosingFile(JsonLinesFile):
    """A JSON Lines file whose last batch never reaches the disk (a lost write)."""

    def append(self, batch):
        if self.rows >= 2:
            return  # swallowed: the stream said nothing
        super().append(batch)


class LosingLoader(JsonLinesLoader):
    def begin(self, *, final, temp, shown):
        return LosingFile(final=final, temp=temp, shown=shown)


def test_a_file_missing_rows_is_not_put_in_place_and_counts_nothing(make_context, tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text('{"old": true}\n')
    pipeline = el("lossy", extract=[[{"a": 1}, {"a": 2}], [{"a": 3}]], load=LosingLoader(target))
    ctx = make_context(pipeline="lossy")
    with pytest.raises(FatalError, match=r"3 rows were written but the finished file holds 2"):
        pipeline.run(ctx)
    assert target.read_text() == '{"old": true}\n'  # the older file stays
    assert (ctx.node_stats.status, ctx.node_stats.rows_loaded) == ("failed", 0)
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_two_runs_writing_one_path_at_once_do_not_mix(make_context, tmp_path):
    loader = write_jsonl(tmp_path / "one.jsonl")
    first, second = make_context(pipeline="a"), make_context(pipeline="a")
    loader.open(first)
    loader.write(pa.record_batch({"run": [1, 1]}), first)
    with pytest.raises(FatalError, match=rf"one\.jsonl is being written by run {first.run_id}"):
        loader.open(second)
    loader.close(second, success=False)  # the refused run has nothing to discard
    loader.close(first, success=True)
    assert (tmp_path / "one.jsonl").read_text() == '{"run":1}\n{"run":1}\n'
    assert loader.rows_written(first) == 2
    loader.open(second)  # free again once the first run is done
    loader.close(second, success=True)


def test_a_file_replaced_right_after_the_rename_fails_the_run(make_context, tmp_path, monkeypatch):
    """Another writer putting its file at the path between our rename and our check."""
    target = tmp_path / "out.jsonl"
    real_replace = Path.replace

    def replace_then_overwritten(self, destination):
        moved = real_replace(self, destination)
        other = tmp_path / ".other.tmp"
        other.write_text('{"other": 1}\n')
        real_replace(other, destination)
        return moved

    monkeypatch.setattr(Path, "replace", replace_then_overwritten)
    ctx = make_context(pipeline="raced")
    with pytest.raises(FatalError, match=r"out\.jsonl was replaced by another writer"):
        el("raced", extract=[{"a": 1}], load=write_jsonl(target)).run(ctx)
    assert ctx.node_stats.rows_loaded == 0


# ----------------------------------------------------------- 2. rows_loaded is confirmed

SLOW_APPEND = """
    import os
    from pathlib import Path
    from runner import clickhouse_append, el

    def rows(ctx):
        for batch in range(200):
            yield [{"id": batch * 19 + i} for i in range(19)]
            if (batch + 1) * 19 == 1938:  # then wait for SIGTERM
                Path(os.environ["MARKER"]).touch()
                ctx.cancel.wait(120)

    pipeline = el("slow_append", extract=rows, load=clickhouse_append("numbers"))
"""
NUMBERS = """
    CREATE TABLE {{database}}.numbers (id UInt64) ENGINE = MergeTree ORDER BY id
    SETTINGS non_replicated_deduplication_window = 1000;
"""


@pytest.mark.slow
@pytest.mark.parametrize(("insert_rows", "landed"), [(1_000_000, 0), (500, 3 * 27 * 19)])
def test_rows_loaded_of_a_cancelled_run_is_what_reached_the_table(tmp_path, insert_rows, landed):
    """A cancelled run once reported 1,938 rows loaded with 0 in the table."""
    project = write_project(tmp_path, {"slow_append_pipeline.py": SLOW_APPEND}, NUMBERS)
    runner(project, "migrate")
    marker = tmp_path / "extracted"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", "slow_append"],
        env=env_for(
            project,
            MARKER=str(marker),
            RUNNER_BATCH_ROWS="19",
            RUNNER_INSERT_ROWS=str(insert_rows),  # 500: inserts of 27 batches (513 rows)
            RUNNER_INSERT_THREADS="1",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=project,
    )
    wait_for(marker)
    time.sleep(1.0)  # every extracted batch has reached the loader
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    finished = json.loads(out.strip().splitlines()[-1])
    [[in_table]] = query(project, "SELECT count() FROM analytics.numbers")
    [[recorded, extracted]] = query(
        project,
        "SELECT rows_loaded, rows_extracted FROM pipeline_runner.runs FINAL "
        "WHERE pipeline = 'slow_append'",
    )
    assert finished["status"] == "cancelled"
    assert extracted == 1938  # every row was read and handed to the loader...
    # ...but only what reached the table counts
    assert in_table == landed
    assert (finished["steps"]["slow_append"]["rows_loaded"], recorded) == (landed, landed)


def test_rows_loaded_is_zero_when_a_replace_or_a_file_run_fails(warehouse, make_context, tmp_path):
    warehouse.command(
        f"CREATE TABLE {warehouse.table('daily')} (day Date, id UInt32) ENGINE = MergeTree "
        "PARTITION BY day ORDER BY id"
    )

    def source():
        yield [{"day": DAY.date(), "id": i} for i in range(100)]
        raise RuntimeError("source broke after 100 rows")

    settings = make_context().settings.model_copy(update={"insert_rows": 10})
    for loader in (
        clickhouse_replace_window("daily", time_column="day"),
        write_parquet(tmp_path / "x.parquet"),
    ):
        ctx = make_context(pipeline="broken", settings=settings)
        with pytest.raises(FatalError, match="source broke"):
            el("broken", extract=source, load=loader).run(ctx)
        assert (ctx.node_stats.rows_extracted, ctx.node_stats.rows_loaded) == (100, 0)
    assert warehouse.query_rows("SELECT count() FROM daily") == [(0,)]
    assert not (tmp_path / "x.parquet").exists()


# ------------------------------------------------------ 3. out-of-range values, refused

T = datetime  # short for the cases below
CASES = [
    # column type, values, indices that must be refused, the others as ClickHouse shows them
    ("UInt8", pa.array([5, 300, -1], pa.int64()), [1, 2], ["5"]),
    ("Int8", pa.array([-128, 127, 128]), [2], ["-128", "127"]),
    ("UInt32", pa.array([7, 5_000_000_000, 99_999_999_999]), [1, 2], ["7"]),
    ("UInt64", pa.array([-1, 3]), [0], ["3"]),
    ("Int64", pa.array([2**63], pa.uint64()), [0], []),
    ("Int32", pa.array([1.0, 1.9, -2.5]), [1, 2], ["1"]),
    ("Int16", pa.array([math.nan, math.inf, -math.inf, 2.0]), [0, 1, 2], ["2"]),
    ("UInt16", pa.array([1, None]), [1], ["1"]),
    ("Nullable(UInt16)", pa.array([1, None, 70_000]), [2], ["1", None]),
    ("UInt8", pa.array(["7", "", "300", "x"]), [1, 2, 3], ["7"]),
    ("Float32", pa.array([1.5, 1e300, math.nan]), [1], ["1.5", "nan"]),
    ("Bool", pa.array([0, 1, 2]), [2], ["false", "true"]),
    ("Date", pa.array([date(1969, 12, 31), date(2000, 1, 1), date(2149, 6, 7)]), [0, 2],
     ["2000-01-01"]),
    ("Date", pa.array([0, 65_535, 65_536, -1], pa.int32()), [2, 3], ["1970-01-01", "2149-06-06"]),
    ("Date32", pa.array([0, 3_000_000], pa.int32()).view(pa.date32()), [1], ["1970-01-01"]),
    ("DateTime('UTC')", pa.array([T(1969, 12, 31, 23, 59, 59), T(2106, 2, 7, 6, 28, 15),
                                   T(2107, 1, 1)], pa.timestamp("s", "UTC")), [0, 2],
     ["2106-02-07 06:28:15"]),
    ("DateTime('UTC')", pa.array([0, 4_294_967_296]), [1], ["1970-01-01 00:00:00"]),
    ("DateTime64(3, 'UTC')", pa.array([0, 300_000_000_000_000], pa.int64()).view(
        pa.timestamp("ms", "UTC")), [1], ["1970-01-01 00:00:00.000"]),
    ("DateTime64(9, 'UTC')", pa.array([T(1600, 1, 1), T(2000, 1, 1)], pa.timestamp("us", "UTC")),
     [0], ["2000-01-01 00:00:00.000000000"]),
    ("Decimal(5, 2)", pa.array([Decimal("123.45"), Decimal("1234.5"), Decimal("1.234")],
                               pa.decimal128(10, 3)), [1, 2], ["123.45"]),
    ("Decimal(5, 2)", pa.array([0.1, 1.239, 12_345_678.0, 0.1 + 0.2]), [1, 2], ["0.1", "0.3"]),
    ("Decimal(5, 2)", pa.array([123, 1234]), [1], ["123"]),
    ("FixedString(3)", pa.array(["abc", "abcd", "é"]), [1], ["abc", "é"]),
    ("Enum8('a' = 1, 'b' = 2)", pa.array(["a", "c", "b"]), [1], ["a", "b"]),
    ("Enum8('a' = 1, 'b' = 2)", pa.array([1, 5]), [1], ["a"]),
    ("LowCardinality(String)", pa.array(["x", None]), [1], ["x"]),
    ("LowCardinality(Nullable(String))", pa.array(["x", None]), [], ["x", None]),
    ("UInt128", pa.array([-1, 2]), [0], ["2"]),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_values_that_do_not_fit_are_refused_never_altered(warehouse, make_context, case):
    column_type, values, refused, kept = case
    warehouse.command(
        f"CREATE TABLE {warehouse.table('t')} (i UInt32, v {column_type}) ENGINE = MergeTree "
        "ORDER BY i"
    )
    batch = pa.record_batch({"i": pa.array(range(len(values)), pa.uint32()), "v": values})
    if refused:
        with pytest.raises(FatalError) as info:
            el("fit", extract=[batch], load=clickhouse_append("t")).run(
                make_context(pipeline="fit")
            )
        message = str(info.value)
        assert f"{warehouse.database}.t" in message
        assert "column 'v'" in message
        assert f"does not fit {column_type}" in message
        assert "on_invalid='quarantine'" in message
        assert warehouse.query_rows("SELECT count() FROM t") == [(0,)]
    ctx = make_context(pipeline="fit")
    el("fit", extract=[batch], load=clickhouse_append("t", on_invalid="quarantine")).run(ctx)
    got = warehouse.query_rows("SELECT i, toString(v) FROM t ORDER BY i")
    if column_type.startswith("Nullable") or "Nullable(" in column_type:
        got = warehouse.query_rows("SELECT i, if(isNull(v), NULL, toString(v)) FROM t ORDER BY i")
    assert [i for i, _ in got] == [i for i in range(len(values)) if i not in refused]
    assert [v for _, v in got] == kept
    quarantined = warehouse.query_rows(
        "SELECT record, reason FROM _quarantine WHERE run_id = {r:String} ORDER BY record",
        {"r": ctx.run_id},
    )
    assert sorted(json.loads(r)["i"] for r, _ in quarantined) == refused
    assert all(f"does not fit {column_type}" in reason for _, reason in quarantined)
    assert (ctx.node_stats.rows_loaded, ctx.node_stats.rows_quarantined) == (
        len(values) - len(refused),
        len(refused),
    )


NARROW = """
    CREATE TABLE {{database}}.narrow (
        id UInt32, small UInt8, big UInt32, ratio Int32, born Date, seen DateTime('UTC'),
        price Decimal(5, 2)
    ) ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 100;
    CREATE TABLE {{database}}.customers (customer_id UInt32, name String, version UInt32)
    ENGINE = ReplacingMergeTree(version) ORDER BY customer_id;
"""
NARROW_PIPELINES = {
    "csv_narrow_pipeline.py": """
        import os
        from runner import clickhouse_append, el
        from runner.tools.extract.files import read_csv

        pipeline = el(
            "csv_narrow",
            extract=read_csv(os.environ["INPUT"]),
            load=clickhouse_append("narrow", on_invalid=os.environ.get("ON_INVALID", "fail")),
        )
    """,
    "parquet_narrow_pipeline.py": """
        import os
        from runner import clickhouse_append, el
        from runner.tools.extract.files import read_parquet

        pipeline = el(
            "parquet_narrow",
            extract=read_parquet(os.environ["INPUT"]),
            load=clickhouse_append("narrow"),
        )
    """,
    "customers_pipeline.py": """
        import os
        from pydantic import BaseModel
        from runner import clickhouse_upsert, etl
        from runner.tools.extract.files import read_jsonl
        from runner.tools.transform.validate import validate

        class Customer(BaseModel):
            customer_id: int
            name: str
            version: int

        pipeline = etl(
            "customers",
            extract=read_jsonl(os.environ["INPUT"]),
            transform=[validate(Customer)],
            load=clickhouse_upsert("customers"),
        )
    """,
}
NARROW_HEADER = ["id", "small", "big", "ratio", "born", "seen", "price"]
GOOD = ["1", "7", "70000", "3", "2000-01-01", "2020-01-01 00:00:00", "12.5"]
NARROW_BAD = {  # column -> a value the engine would have wrapped, clamped or truncated
    "small": "300",
    "big": "5000000000",
    "ratio": "1.9",
    "born": "1969-07-20",
    "seen": "2107-01-01 00:00:00",
    "price": "12345678",
}


@pytest.fixture(scope="module")
def narrow(tmp_path_factory):
    project = write_project(tmp_path_factory.mktemp("narrow"), NARROW_PIPELINES, NARROW)
    runner(project, "migrate")
    return project


@pytest.mark.slow
@pytest.mark.parametrize("column", list(NARROW_BAD))
def test_a_csv_value_the_engine_would_alter_fails_the_run(narrow, tmp_path, column):
    path = tmp_path / "in.csv"
    bad = dict(zip(NARROW_HEADER, GOOD, strict=True)) | {"id": "2", column: NARROW_BAD[column]}
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(NARROW_HEADER)
        writer.writerow(GOOD)
        writer.writerow([bad[c] for c in NARROW_HEADER])
    result = runner(narrow, "run", "csv_narrow", check=False, INPUT=str(path))
    line = one_line(result.stderr)
    assert result.returncode == 1
    assert f"analytics.narrow: row 2 of the run: column {column!r}" in line, line
    assert NARROW_BAD[column].split(" ")[0] in line
    assert query(narrow, "SELECT count() FROM analytics.narrow") == [[0]]
    # with quarantine, the good row lands as it was and the bad one is kept aside
    quarantined = runner(narrow, "run", "csv_narrow", INPUT=str(path), ON_INVALID="quarantine")
    assert last_event(quarantined)["steps"]["csv_narrow"]["rows_quarantined"] == 1
    assert query(
        narrow,
        "SELECT id, small, big, ratio, toString(born), toString(seen), toString(price) "
        "FROM analytics.narrow",
    ) == [[1, 7, 70000, 3, "2000-01-01", "2020-01-01 00:00:00", "12.5"]]
    [[reason]] = query(
        narrow,
        "SELECT reason FROM analytics._quarantine WHERE pipeline = 'csv_narrow' "
        "ORDER BY quarantined_at DESC LIMIT 1",
    )
    assert f"column {column!r}" in reason
    query(narrow, "TRUNCATE TABLE analytics.narrow")


@pytest.mark.slow
def test_parquet_values_the_engine_would_alter_fail_the_run(narrow, tmp_path):
    path = tmp_path / "in.parquet"
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "small": pa.array([7, -1], pa.int64()),
            "big": pa.array([70_000, 5], pa.int64()),
            "ratio": pa.array([3.0, math.nan]),
        }
    )
    pq.write_table(table, path)
    result = runner(narrow, "run", "parquet_narrow", check=False, INPUT=str(path))
    line = one_line(result.stderr)
    assert result.returncode == 1
    assert "column 'small': -1 does not fit UInt8" in line, line
    assert "1 more rows of the batch do not fit" not in line  # row 2 is the only bad row
    assert query(narrow, "SELECT count() FROM analytics.narrow") == [[0]]


@pytest.mark.slow
def test_a_validated_key_too_large_for_the_table_does_not_overwrite_another(narrow, tmp_path):
    """99999999999 into UInt32 was upserted as 1215752191, replacing that customer."""
    path = tmp_path / "customers.jsonl"
    path.write_text('{"customer_id": 1215752191, "name": "victim", "version": 1}\n')
    runner(narrow, "run", "customers", INPUT=str(path))
    path.write_text('{"customer_id": 99999999999, "name": "attacker", "version": 2}\n')
    result = runner(narrow, "run", "customers", check=False, INPUT=str(path))
    line = one_line(result.stderr)
    assert result.returncode == 1
    assert "column 'customer_id': 99999999999 does not fit UInt32" in line
    assert query(narrow, "SELECT customer_id, name FROM analytics.customers FINAL") == [
        [1215752191, "victim"]
    ]


# ------------------------------------------------------ 4. an empty source wipes nothing

REPLACE = {
    "days_pipeline.py": """
        import os
        from runner import clickhouse_replace_window, el
        from runner.tools.extract.files import read_csv

        fraction = os.environ.get("MIN_FRACTION")
        pipeline = el(
            "days",
            schedule="0 0 * * *",
            extract=read_csv(os.environ["INPUT"]),
            load=clickhouse_replace_window(
                "days",
                time_column="ts",
                allow_empty=os.environ.get("ALLOW_EMPTY") == "1",
                min_fraction=float(fraction) if fraction else None,
            ),
        )
    """,
}
DAYS = """
    CREATE TABLE {{database}}.days (id UInt32, ts DateTime('UTC'))
    ENGINE = MergeTree PARTITION BY toDate(ts) ORDER BY id;
"""


@pytest.mark.slow
def test_a_header_only_file_does_not_empty_a_window(tmp_path):
    project = write_project(tmp_path / "p", REPLACE, DAYS)
    runner(project, "migrate")
    full = tmp_path / "full.csv"
    full.write_text("id,ts\n" + "".join(f"{i},2026-01-01 {i % 24:02}:00:00\n" for i in range(240)))
    window = ["--start", "2026-01-01", "--end", "2026-01-02"]
    runner(project, "run", "days", *window, INPUT=str(full))
    empty = tmp_path / "empty.csv"
    empty.write_text("id,ts\n")
    result = runner(project, "run", "days", *window, check=False, INPUT=str(empty))
    line = one_line(result.stderr)
    assert result.returncode == 1
    assert "the new data has 0 rows for the window" in line
    assert "which holds 240 rows now" in line
    assert "allow_empty=True" in line
    assert query(project, "SELECT count() FROM analytics.days") == [[240]]
    assert last_event(result)["steps"]["days"]["rows_loaded"] == 0
    few = tmp_path / "few.csv"
    few.write_text("id,ts\n1,2026-01-01 05:00:00\n")
    refused = runner(
        project, "run", "days", *window, check=False, INPUT=str(few), MIN_FRACTION="0.5"
    )
    assert refused.returncode == 1
    assert "has 1 rows for the window" in refused.stderr
    assert "min_fraction=0.5" in refused.stderr
    assert query(project, "SELECT count() FROM analytics.days") == [[240]]
    # an explicit opt-in empties it
    runner(project, "run", "days", *window, INPUT=str(empty), ALLOW_EMPTY="1")
    assert query(project, "SELECT count() FROM analytics.days") == [[0]]
    assert query(
        project, "SELECT count() FROM system.tables WHERE name LIKE 'days\\_\\_staging%'"
    ) == [[0]]


class Tampered(ClickHouseReplaceWindow):
    """Something else touches the staging table between the last insert and the swap."""

    def __init__(self, action: str) -> None:
        super().__init__("daily", time_column="day", allow_empty=True)
        self.action = action

    def _swap(self, ctx, staging):
        wh = ctx.warehouse
        if self.action == "recreate":  # dropped as an orphan, then made again by someone
            wh.command(f"DROP TABLE {wh.table(staging)} SYNC")
            wh.command(f"CREATE TABLE {wh.table(staging)} AS {wh.table(self.target)}")
        else:  # emptied
            wh.command(f"TRUNCATE TABLE {wh.table(staging)}")
        super()._swap(ctx, staging)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("recreate", r"staging table .* is gone or no longer this run's; nothing was replaced"),
        ("truncate", r"staging table holds 0 rows but this run's inserts confirmed 5"),
    ],
)
def test_a_swap_from_a_staging_table_that_is_not_what_was_inserted_is_refused(
    warehouse, make_context, action, message
):
    """Swapping from an empty or foreign staging table would silently empty the window."""
    warehouse.command(
        f"CREATE TABLE {warehouse.table('daily')} (day Date, id UInt32) ENGINE = MergeTree "
        "PARTITION BY day ORDER BY id"
    )
    rows = [{"day": DAY.date(), "id": i} for i in range(5)]
    el("d", extract=[rows], load=clickhouse_replace_window("daily", time_column="day")).run(
        make_context(pipeline="d")
    )
    ctx = make_context(pipeline="d")
    with pytest.raises(FatalError, match=message):
        el("d", extract=[rows[:3] + [{"day": DAY.date(), "id": 9}] * 2], load=Tampered(action)).run(
            ctx
        )
    assert warehouse.query_rows("SELECT count(), sum(id) FROM daily") == [(5, 10)]
    assert ctx.node_stats.rows_loaded == 0


def test_replace_window_options_are_checked_at_declaration():
    for bad in (0, 1.5, -0.1, True, "half"):
        with pytest.raises(
            ConfigError,
            match=r"replace_window\(t\): min_fraction: (must be a number above 0|Input should be a valid number)",
        ):
            clickhouse_replace_window("t", time_column="ts", min_fraction=bad)
    with pytest.raises(
        ConfigError, match=r"replace_window\(t\): allow_empty: Input should be a valid boolean"
    ):
        clickhouse_replace_window("t", time_column="ts", allow_empty="yes")
    with pytest.raises(
        ConfigError,
        match=r"append\(t\): on_invalid: Input should be 'fail' or 'quarantine'",
    ):
        clickhouse_append("t", on_invalid="skip")


# ------------------------------------------------------ 5. orphaned staging tables

STAGED = {
    "staged_pipeline.py": """
        import os, time
        from datetime import timedelta
        from pathlib import Path
        from runner import clickhouse_replace_window, el

        def rows(ctx):
            marker = Path(os.environ.get("MARKER", "/nonexistent/never"))
            start = ctx.window.start
            for batch in range(20):
                yield [{"id": batch * 50 + i, "ts": start + timedelta(minutes=batch * 50 + i)}
                       for i in range(50)]
                if batch == 5 and os.environ.get("MARKER"):
                    Path(f"{marker}-{start:%d}").touch()
                    time.sleep(120)

        pipeline = el(
            "staged",
            schedule="0 0 * * *",
            extract=rows,
            load=clickhouse_replace_window("staged", time_column="ts"),
        )
    """,
}
# a second pipeline loading the same table: its runs see the first one's staging tables,
# whose runs it does not mark failed itself (that is done per pipeline)
STAGED["restaged_pipeline.py"] = STAGED["staged_pipeline.py"].replace(
    'el(\n            "staged"', 'el(\n            "restaged"'
)
assert '"restaged"' in STAGED["restaged_pipeline.py"]
STAGED_TABLE = """
    CREATE TABLE {{database}}.staged (id UInt32, ts DateTime('UTC'))
    ENGINE = MergeTree PARTITION BY toDate(ts) ORDER BY id;
"""
STAGING_TABLES = (
    "SELECT name FROM system.tables WHERE database = 'analytics' "
    "AND name LIKE 'staged\\_\\_staging\\_%' ORDER BY name"
)
# A heartbeat goes stale only after an hour: a killed run is found dead by its free
# liveness lock (file locks), at once, not by waiting for its heartbeat to age.
FAST = {"RUNNER_BATCH_ROWS": "50", "RUNNER_INSERT_ROWS": "50", "RUNNER_INSERT_THREADS": "1",
        "RUNNER_HEARTBEAT_SECONDS": "0.2", "RUNNER_STALE_AFTER_SECONDS": "3600"}  # fmt: skip


def start_killable(project, marker, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "runner", *args],
        env=env_for(project, MARKER=str(marker), **FAST),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=project,
    )


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def day_rows(project, day):
    [[count, low, high]] = query(
        project,
        f"SELECT count(), min(id), max(id) FROM analytics.staged WHERE toDate(ts) = '{day}'",
    )
    return count, low, high


@pytest.mark.slow
def test_staging_tables_of_killed_runs_are_dropped_by_the_next_runs(tmp_path):
    project = write_project(tmp_path / "p", STAGED, STAGED_TABLE)
    runner(project, "migrate")
    marker = tmp_path / "at-batch-5"
    day1 = ["--start", "2026-01-01", "--end", "2026-01-02"]
    day2 = ["--start", "2026-01-02", "--end", "2026-01-03"]

    # a killed run of day 1 leaves its staging table; the next run of day 1 drops it
    kill_me = start_killable(project, marker, "run", "staged", *day1)
    wait_for(Path(f"{marker}-01"))
    kill(kill_me)
    [[orphan]] = query(project, STAGING_TABLES)
    comment = query(
        project,
        f"SELECT comment FROM system.tables WHERE database = 'analytics' AND name = '{orphan}'",
    )[0][0]
    assert json.loads(comment)["window_start"] == "2026-01-01T00:00:00+00:00"
    rerun = runner(project, "run", "staged", *day1, **FAST)
    dropped = [json.loads(x) for x in rerun.stdout.splitlines() if "staging table dropped" in x]
    assert [d["table"] for d in dropped] == [f"analytics.{orphan}"]
    assert query(project, STAGING_TABLES) == []
    assert day_rows(project, "2026-01-01") == (1000, 0, 999)

    # a killed run of day 2 leaves one; a run of another window drops it at once (the
    # killed run is proven dead by its free liveness lock, though its heartbeat is fresh)
    kill_me = start_killable(project, marker, "run", "staged", *day2)
    wait_for(Path(f"{marker}-02"))
    kill(kill_me)
    assert len(query(project, STAGING_TABLES)) == 1
    later = runner(project, "run", "staged", "--start", "2026-01-03", "--end", "2026-01-04", **FAST)
    dropped = [json.loads(x) for x in later.stdout.splitlines() if "staging table dropped" in x]
    assert len(dropped) == 1
    assert query(project, STAGING_TABLES) == []
    assert day_rows(project, "2026-01-01") == (1000, 0, 999)  # untouched
    assert day_rows(project, "2026-01-02")[0] == 0  # the killed run swapped nothing
    assert day_rows(project, "2026-01-03") == (1000, 0, 999)

    # a run of another pipeline loading the table does not mark the killed run failed
    # (that is per pipeline): the staging cleanup asks the run's liveness lock itself
    kill_me = start_killable(project, marker, "run", "staged", "--start", "2026-01-04",
                             "--end", "2026-01-05")  # fmt: skip
    wait_for(Path(f"{marker}-04"))
    kill(kill_me)
    other = runner(project, "run", "restaged", "--start", "2026-01-05", "--end", "2026-01-06",
                   **FAST)  # fmt: skip
    dropped = [json.loads(x) for x in other.stdout.splitlines() if "staging table dropped" in x]
    assert len(dropped) == 1
    assert "liveness lock" in dropped[0]["reason"], dropped
    assert query(project, STAGING_TABLES) == []
    assert day_rows(project, "2026-01-05") == (1000, 0, 999)


@pytest.mark.slow
def test_a_killed_parallel_backfill_leaves_no_staging_after_it_is_rerun(tmp_path):
    project = write_project(tmp_path / "p", STAGED, STAGED_TABLE)
    runner(project, "migrate")
    marker = tmp_path / "at-batch-5"
    window = ["--start", "2026-01-01", "--end", "2026-01-03"]
    kill_me = start_killable(project, marker, "backfill", "run", "staged", *window,
                             "--parallelism", "2")  # fmt: skip
    wait_for(Path(f"{marker}-01"))
    wait_for(Path(f"{marker}-02"))
    kill(kill_me)
    assert len(query(project, STAGING_TABLES)) == 2  # both windows were staging
    again = runner(project, "backfill", "run", "staged", *window, "--parallelism", "2", **FAST)
    finished = [json.loads(x) for x in again.stdout.splitlines() if "window finished" in x]
    assert [f["status"] for f in finished] == ["succeeded", "succeeded"]
    assert query(project, STAGING_TABLES) == []
    assert day_rows(project, "2026-01-01") == (1000, 0, 999)
    assert day_rows(project, "2026-01-02") == (1000, 0, 999)


def test_a_live_window_keeps_its_staging_table_while_another_window_starts(
    runner_settings, warehouse, tmp_path
):
    """Backfill windows run at once, each holding only its window lock: cleaning up
    must never drop the staging table of a window that is still loading."""
    from runner.pipeline.discovery import Registry
    from runner.services.run import run_pipeline

    warehouse.command(
        f"CREATE TABLE {warehouse.table('staged')} (id UInt32, ts DateTime('UTC')) "
        "ENGINE = MergeTree PARTITION BY toDate(ts) ORDER BY id"
    )
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "live_pipeline.py").write_text(
        textwrap.dedent(
            f"""
            import time
            from datetime import timedelta
            from pathlib import Path
            from runner import clickhouse_replace_window, el

            FLAGS = Path({str(tmp_path)!r})

            def rows(ctx):
                start = ctx.window.start
                yield [{{"id": i, "ts": start + timedelta(minutes=i)}} for i in range(50)]
                if start.day == 1:  # window 1 waits, half loaded, until window 2 is done
                    (FLAGS / "one-is-staging").touch()
                    while not (FLAGS / "two-is-done").exists():
                        time.sleep(0.05)
                yield [{{"id": 50 + i, "ts": start + timedelta(minutes=50 + i)}} for i in range(50)]

            pipeline = el(
                "live",
                schedule="0 0 * * *",
                extract=rows,
                load=clickhouse_replace_window("staged", time_column="ts"),
            )
            """
        )
    )
    settings = runner_settings.model_copy(
        update={
            "project_dir": tmp_path,
            "trigger": "backfill",  # window locks only, as a parallel backfill takes them
            "lock_backend": "file",
            "insert_rows": 50,
            "insert_threads": 1,
        }
    )
    registry = Registry(tmp_path / "pipelines")
    results: dict[str, object] = {}

    def window_one():
        try:
            results["one"] = run_pipeline(
                settings, registry, "live", window=Window(DAY, DAY + timedelta(days=1))
            )
        except Exception as exc:  # noqa: BLE001 - asserted below
            results["one"] = exc

    first = threading.Thread(target=window_one)
    first.start()
    wait_for(tmp_path / "one-is-staging")
    second = run_pipeline(
        settings,
        registry,
        "live",
        window=Window(DAY + timedelta(days=1), DAY + timedelta(days=2)),
    )
    (tmp_path / "two-is-done").touch()
    first.join(timeout=120)
    assert second.status == "succeeded"
    assert getattr(results["one"], "status", results["one"]) == "succeeded"
    counts = warehouse.query_rows("SELECT toDate(ts), count() FROM staged GROUP BY 1 ORDER BY 1")
    assert counts == [(date(2026, 1, 1), 100), (date(2026, 1, 2), 100)]
    assert warehouse.query_rows(
        "SELECT count() FROM system.tables WHERE database = {db:String} "
        "AND name LIKE 'staged\\_\\_staging%'",
        {"db": warehouse.database},
    ) == [(0,)]


# ---------------------------------------------- 6. quarantined rows as the source had them

QUARANTINE = {
    "people_pipeline.py": """
        import os
        from datetime import date
        from pydantic import BaseModel
        from runner import clickhouse_append, etl
        from runner.tools.extract.files import read_jsonl
        from runner.tools.transform.validate import validate

        class Person(BaseModel):
            id: int
            email: str
            joined: date

        pipeline = etl(
            "people",
            extract=read_jsonl(os.environ["INPUT"]),
            transform=[validate(Person, on_error="skip")],
            load=clickhouse_append("people"),
        )
    """,
}
PEOPLE = """
    CREATE TABLE {{database}}.people (id UInt32, email String, joined Date)
    ENGINE = MergeTree ORDER BY id;
"""


@pytest.mark.slow
def test_a_quarantined_json_row_holds_exactly_its_keys(tmp_path):
    project = write_project(tmp_path / "p", QUARANTINE, PEOPLE)
    runner(project, "migrate")
    source = tmp_path / "people.jsonl.gz"
    lines = [
        {"id": 1, "email": "a@example.com", "joined": "2025-01-01"},
        {"id": 2, "joined": "2025-01-02", "tags": {"a": [1, 2]}},  # no email at all
        {"id": 3, "email": None, "joined": "2025-01-03"},  # an explicit null
        {"id": 4, "email": "d@example.com", "joined": "2025-01-04"},
    ]
    with gzip.open(source, "wt") as out:
        out.write("\n")  # a blank line first: records are counted without it
        for line in lines:
            out.write(json.dumps(line) + "\n\n")
    result = runner(project, "run", "people", INPUT=str(source))
    assert last_event(result)["steps"]["people"]["rows_quarantined"] == 2
    stored = query(
        project,
        "SELECT record, reason FROM analytics._quarantine WHERE pipeline = 'people' "
        "ORDER BY record",
    )
    assert [(json.loads(record), reason) for record, reason in stored] == [
        ({"id": 2, "joined": "2025-01-02", "tags": {"a": [1, 2]}}, "email: Field required"),
        ({"id": 3, "email": None, "joined": "2025-01-03"}, "email: Input should be a valid string"),
    ]
    assert query(project, "SELECT id FROM analytics.people ORDER BY id") == [[1], [4]]
