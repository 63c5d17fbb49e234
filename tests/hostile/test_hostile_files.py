"""Hostile files at the tool level: each ends in one clear line naming the file, or in
quarantined rows with their reasons, never in another exception."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

import pyarrow as pa
import pytest
from hostile_corpus import (
    EMPTY_FILES,
    FATAL_FILES,
    BadFile,
    csv_lines,
    good_rows,
    quarantine_rows,
    write,
)
from pydantic import AfterValidator, BaseModel, Field

from runner.errors import FatalError
from runner.pipeline.context import QUARANTINE_TABLE
from runner.tools.extract.files import read_csv, read_jsonl, read_parquet
from runner.tools.transform.validate import validate

SCHEMA = pa.schema([("id", pa.int64()), ("ts", pa.timestamp("ms", "UTC")), ("name", pa.string())])
SMALL_BLOCK = 1024  # several blocks before the damage: batches were already handed on


def reader(case: BadFile, path):
    if case.fmt == "csv":
        return read_csv(path, schema=SCHEMA, block_size=SMALL_BLOCK)
    if case.fmt == "jsonl":
        return read_jsonl(path, schema=SCHEMA, block_size=SMALL_BLOCK)
    return read_parquet(path)


@pytest.fixture
def ctx(make_context):
    return make_context()


@pytest.mark.parametrize("case", FATAL_FILES, ids=lambda c: c.name)
def test_a_bad_file_is_one_line_naming_the_file(case, tmp_path, ctx):
    path = write(case, tmp_path)
    sizes: list[int] = []
    with pytest.raises(FatalError) as info:
        sizes.extend(batch.num_rows for batch in reader(case, path).extract(ctx))
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message, message
    assert re.search(case.error, message), message
    assert len(message) < 2000  # a 10 MB field is not copied into the message
    assert sum(sizes) <= case.rows_before_damage  # nothing after the damage was yielded


@pytest.mark.parametrize("case", EMPTY_FILES, ids=lambda c: c.name)
def test_an_empty_file_has_no_rows(case, tmp_path, ctx):
    path = write(case, tmp_path)
    source = read_csv(path, schema=SCHEMA) if case.fmt == "csv" else read_jsonl(path, schema=SCHEMA)
    assert sum(b.num_rows for b in source.extract(ctx)) == 0


def test_an_empty_file_between_good_ones_is_skipped(tmp_path, ctx):
    (tmp_path / "a.csv").write_bytes(csv_lines(good_rows("2026-01-01", 3)))
    (tmp_path / "b.csv").write_bytes(b"")
    (tmp_path / "c.csv").write_bytes(csv_lines(good_rows("2026-01-01", 2, start=10)))
    batches = list(read_csv(str(tmp_path / "*.csv")).extract(ctx))
    assert [r["id"] for b in batches for r in b.to_pylist()] == [0, 1, 2, 10, 11]


def test_columns_that_differ_between_files_name_the_second_file(tmp_path, ctx):
    (tmp_path / "a.csv").write_bytes(csv_lines(good_rows("2026-01-01", 3)))
    (tmp_path / "b.csv").write_bytes(b"id,ts,label\n1,2026-01-01T00:00:00Z,x\n")
    with pytest.raises(FatalError) as info:
        list(read_csv(str(tmp_path / "*.csv")).extract(ctx))
    assert re.search(
        r"b\.csv: columns do not match .*missing name; unexpected label", str(info.value)
    )


def in_clickhouse_range(value: datetime) -> datetime:
    if not datetime(1970, 1, 1, tzinfo=UTC) <= value < datetime(2106, 1, 1, tzinfo=UTC):
        raise ValueError(f"{value.isoformat()} is outside what DateTime can hold")
    return value


class Event(BaseModel):
    id: int
    ts: Annotated[datetime, AfterValidator(in_clickhouse_range)]
    name: Annotated[str, Field(max_length=1000)]
    amount: Annotated[float, Field(allow_inf_nan=False)]


STRINGS = pa.schema([(n, pa.string()) for n in ("id", "ts", "name", "amount")])


def test_bad_rows_are_quarantined_with_their_reasons(tmp_path, ctx, warehouse):
    data, reasons = quarantine_rows("2026-01-01")
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(data)
    check = validate(Event, on_error="skip")
    kept = []
    for batch in read_jsonl(path, schema=STRINGS).extract(ctx):
        out = check.transform(batch, ctx)
        if out is not None:
            kept += out.to_pylist()
    assert sorted(r["id"] for r in kept) == [0, 1, 2, 3, 4]
    stored = warehouse.query_rows(
        f"SELECT JSONExtractString(record, 'id'), reason FROM {QUARANTINE_TABLE} "
        "WHERE run_id = {r:String}",
        {"r": ctx.run_id},
    )
    assert len(stored) == len(reasons)
    for raw_id, reason in stored:
        key = int(raw_id) if raw_id.isdigit() else -1
        assert re.search(reasons[key], reason), (raw_id, reason)
        assert "\n" not in reason
    assert ctx.node_stats.rows_quarantined == len(reasons)
