"""File loaders: JSON Lines and Parquet written atomically, read back with the extractors."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runner.errors import ConfigError, FatalError, PipelineError
from runner.pipeline.factory import el
from runner.pipeline.windows import Window
from runner.tools.extract.files import read_csv, read_jsonl, read_parquet
from runner.tools.load.files import write_jsonl, write_parquet


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load(loader, ctx, *batches, success=True) -> None:
    loader.open(ctx)
    for batch in batches:
        loader.write(batch, ctx)
    loader.close(ctx, success=success)


def files_in(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def test_parquet_round_trip_casts_later_batches_to_the_first_schema(workdir, make_context):
    ctx = make_context()
    first = pa.record_batch({"id": pa.array([1, 2], pa.int64()), "name": ["a", "b"]})
    second = pa.record_batch({"name": ["c"], "id": pa.array([3], pa.int32())})

    load(write_parquet("out/data.parquet"), ctx, first, second)

    assert files_in(workdir) == ["out/data.parquet"]
    metadata = pq.ParquetFile(workdir / "out/data.parquet").metadata
    assert metadata.num_row_groups == 2
    assert metadata.row_group(0).column(0).compression == "ZSTD"
    table = pa.Table.from_batches(list(read_parquet("out/data.parquet").extract(ctx)))
    assert table.schema == first.schema
    assert table.to_pylist() == [
        {"id": 1, "name": "a"},
        {"id": 2, "name": "b"},
        {"id": 3, "name": "c"},
    ]


def test_parquet_batch_with_other_columns_fails(workdir, make_context):
    ctx = make_context()
    loader = write_parquet("x.parquet", compression="snappy")
    loader.open(ctx)
    loader.write(pa.record_batch({"a": [1]}), ctx)
    with pytest.raises(FatalError, match=r"Parquet file x\.parquet: .*missing: a; unexpected: b"):
        loader.write(pa.record_batch({"b": [1]}), ctx)
    with pytest.raises(FatalError, match=r"Parquet file x\.parquet: .*types"):
        loader.write(pa.record_batch({"a": ["text"]}), ctx)
    loader.close(ctx, success=False)
    assert files_in(workdir) == []


def test_parquet_run_without_rows_still_replaces_an_older_file(workdir, make_context):
    ctx = make_context()
    load(write_parquet("x.parquet"), ctx, pa.record_batch({"a": [1, 2]}))
    load(write_parquet("x.parquet"), ctx)
    assert pq.read_table(workdir / "x.parquet").num_rows == 0
    assert list(read_parquet("x.parquet").extract(ctx)) == []


def test_jsonl_gzip_round_trip_and_value_encoding(workdir, make_context):
    ctx = make_context()
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    batch = pa.record_batch(
        {
            "id": [1, 2],
            "at": pa.array([at, None], pa.timestamp("us", "UTC")),
            "blob": pa.array([b"\x00\xff", b"hi"], pa.binary()),
            "price": pa.array([Decimal("12.34"), Decimal("0.10")], pa.decimal128(10, 2)),
            "ratio": [float("nan"), 0.5],
            "text": ["héllo", 'quote"d'],
        }
    )

    load(write_jsonl("out/rows.jsonl.gz"), ctx, batch, batch.slice(1))

    lines = gzip.decompress((workdir / "out/rows.jsonl.gz").read_bytes()).decode().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[0]) == {
        "id": 1,
        "at": "2026-01-02T03:04:05+00:00",
        "blob": base64.b64encode(b"\x00\xff").decode(),
        "price": "12.34",
        "ratio": None,
        "text": "héllo",
    }
    schema = pa.schema(
        [("id", pa.int64()), ("at", pa.timestamp("us", "UTC")), ("text", pa.string())]
    )
    back = pa.Table.from_batches(list(read_jsonl("out/rows.jsonl.gz", schema=schema).extract(ctx)))
    assert back.to_pylist() == [
        {"id": 1, "at": at, "text": "héllo"},
        {"id": 2, "at": None, "text": 'quote"d'},
        {"id": 2, "at": None, "text": 'quote"d'},
    ]


def test_jsonl_value_json_cannot_hold_fails_naming_the_file(workdir, make_context):
    ctx = make_context()
    loader = write_jsonl("bad.jsonl")
    loader.open(ctx)
    nested_nan = pa.record_batch({"xs": pa.array([[1.0, float("nan")]])})
    with pytest.raises(FatalError, match=r"JSONL file bad\.jsonl: a row cannot be written"):
        loader.write(nested_nan, ctx)
    loader.close(ctx, success=False)
    assert files_in(workdir) == []


@pytest.mark.parametrize("factory", [write_jsonl, write_parquet])
def test_failed_run_leaves_no_file_and_keeps_the_older_one(workdir, make_context, factory):
    ctx = make_context()
    load(factory("out/x.dat"), ctx, pa.record_batch({"v": [1]}))
    before = (workdir / "out/x.dat").read_bytes()

    loader = factory("out/x.dat")
    loader.open(ctx)
    loader.write(pa.record_batch({"v": [2, 3]}), ctx)
    # while writing, only a hidden temporary file exists beside the untouched target
    temps = [p for p in (workdir / "out").iterdir() if p.name != "x.dat"]
    assert [p.name.startswith(".x.dat.") and p.suffix == ".tmp" for p in temps] == [True]
    assert (workdir / "out/x.dat").read_bytes() == before
    loader.close(ctx, success=False)

    assert files_in(workdir) == ["out/x.dat"]
    assert (workdir / "out/x.dat").read_bytes() == before


@pytest.mark.parametrize("factory", [write_jsonl, write_parquet])
def test_failed_first_run_leaves_nothing(workdir, make_context, factory):
    ctx = make_context()
    load(factory("new/x.dat"), ctx, pa.record_batch({"v": [1]}), success=False)
    assert files_in(workdir) == []


def test_loader_is_reusable_across_runs(workdir, make_context):
    loader = write_jsonl("{run_id}.jsonl")
    first, second = make_context(run_id="r1"), make_context(run_id="r2")
    load(loader, first, pa.record_batch({"v": [1]}))
    load(loader, second, pa.record_batch({"v": [2]}))
    assert (workdir / "r1.jsonl").read_text() == '{"v":1}\n'
    assert (workdir / "r2.jsonl").read_text() == '{"v":2}\n'


def test_placeholders_name_each_run_and_window(workdir, make_context):
    window = Window(datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC))
    ctx = make_context(pipeline="orders", run_id="run-42", window=window)
    loader = write_parquet("exports/{pipeline}/{window_start}_{window_end}_{run_id}.parquet")

    load(loader, ctx, pa.record_batch({"v": [1]}))

    assert files_in(workdir) == ["exports/orders/20260304T050607_20260305T000000_run-42.parquet"]
    assert loader.describe() == (
        "write_parquet(exports/{pipeline}/{window_start}_{window_end}_{run_id}.parquet)"
    )


def test_absolute_path_and_literal_braces(tmp_path, make_context):
    ctx = make_context(pipeline="p")
    load(write_jsonl(tmp_path / "{{x}}-{pipeline}.jsonl"), ctx, pa.record_batch({"v": [1]}))
    assert files_in(tmp_path) == ["{x}-p.jsonl"]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: write_jsonl("out/{date}.jsonl"), r"unknown placeholder \{date\}"),
        (lambda: write_jsonl("out/{}.jsonl"), r"unknown placeholder \{\}"),
        (lambda: write_jsonl("out/{window_start:%Y}.jsonl"), "takes no format"),
        (lambda: write_parquet("out/{pipeline.jsonl"), "literal brace"),
        (lambda: write_parquet("out/"), "must name a file"),
        (lambda: write_parquet(42), "must be a file path"),
        (
            lambda: write_parquet("x.parquet", compression="zip"),
            "write_parquet: compression: must be one of",
        ),
    ],
)
def test_bad_arguments_are_config_errors_at_declaration(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_path_that_is_a_directory_fails_at_open(workdir, make_context):
    (workdir / "taken.jsonl").mkdir()
    with pytest.raises(FatalError, match=r"taken\.jsonl is a directory"):
        write_jsonl("taken.jsonl").open(make_context())


def test_end_to_end_csv_files_to_parquet_and_back_to_jsonl(workdir, make_context):
    (workdir / "in").mkdir()
    (workdir / "in/1.csv").write_text("id,city\n1,Oslo\n2,Lima\n")
    (workdir / "in/2.csv.gz").write_bytes(gzip.compress(b"id,city\n3,Pune\n"))

    to_parquet = el(
        "cities",
        extract=read_csv("in/*", filename_column="source"),
        load=write_parquet("lake/{pipeline}/{window_start}.parquet"),
    )
    ctx = make_context(pipeline="cities")
    to_parquet.run(ctx)
    assert ctx.node_stats.rows_loaded == 3
    assert files_in(workdir / "lake") == ["cities/20260101T000000.parquet"]

    to_jsonl = el(
        "export",
        extract=read_parquet("lake/cities/*.parquet", columns=["city", "id"]),
        load=write_jsonl("export/{pipeline}.jsonl"),
    )
    to_jsonl.run(make_context(pipeline="export"))
    assert (workdir / "export/export.jsonl").read_text().splitlines() == [
        '{"city":"Oslo","id":1}',
        '{"city":"Lima","id":2}',
        '{"city":"Pune","id":3}',
    ]


def test_end_to_end_failure_leaves_no_output(workdir, make_context):
    (workdir / "a.csv").write_text("id\n1\n2\n")
    (workdir / "b.csv").write_text("id\n3\nnot-a-number\n")
    pipeline = el("broken", extract=read_csv("*.csv"), load=write_jsonl("out/{pipeline}.jsonl"))
    ctx = make_context(pipeline="broken")
    with pytest.raises(PipelineError, match=r"CSV file b\.csv: line 3: column 'id'") as info:
        pipeline.run(ctx)
    assert info.value.step == "read_csv"
    assert ctx.node_stats.status == "failed"
    assert not (workdir / "out").exists() or files_in(workdir / "out") == []
