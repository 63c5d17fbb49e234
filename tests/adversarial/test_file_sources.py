"""Regression tests for the file-source findings of the adversarial report (issue 12).

Each test reproduces an attack on real files in a temporary directory, run through a real
flow on the embedded ClickHouse, and would fail without its fix:

* a JSON row with a wrong type under ``validate(on_error="skip")`` failed the whole run
  inside ``read_jsonl`` instead of reaching the quarantine;
* a CSV line longer than the reader's block gave Arrow's "straddling object" without
  naming the option to change, nor the line;
* a Parquet file missing a column was silently filled with defaults.
"""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import BaseModel

from runner import etl
from runner.errors import FatalError, RunnerError, ValidationFailedError
from runner.pipeline.context import QUARANTINE_TABLE
from runner.tools.extract.files import read_csv, read_jsonl, read_parquet
from runner.tools.transform.validate import validate


class Customer(BaseModel):
    customer_id: int
    email: str
    updated_at: datetime


def customer(i: int, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "customer_id": i,
        "email": f"user{i}@example.com",
        "updated_at": f"2026-01-01T{i % 24:02d}:00:00Z",
    }
    row.update(changes)
    return row


def jsonl(rows: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


class Collect:
    """A loader keeping what reached it."""

    def __init__(self) -> None:
        self.rows: list[dict[str, object]] = []

    def __call__(self, batch: pa.RecordBatch) -> None:
        self.rows.extend(batch.to_pylist())


def quarantined(warehouse, run_id: str) -> list[tuple[str, str, str]]:
    return warehouse.query_rows(
        f"SELECT step, reason, record FROM {QUARANTINE_TABLE} "
        "WHERE run_id = {r:String} ORDER BY reason",
        {"r": run_id},
    )


@pytest.fixture
def customers_file(tmp_path: Path) -> Path:
    """3000 customers (several 4 KiB blocks), two with a customer_id of the wrong type."""
    rows = [customer(i) for i in range(1, 3001)]
    rows[1500] = customer(1501, customer_id="fifteen-oh-one")  # after the first block
    rows[2] = customer(3, customer_id={"nested": True})  # inside the first block
    path = tmp_path / "customers.jsonl.gz"
    path.write_bytes(gzip.compress(jsonl(rows)))
    return path


@pytest.mark.parametrize("schema", [None, pa.schema([("customer_id", pa.int64())])])
def test_a_json_row_of_the_wrong_type_reaches_the_quarantine(
    customers_file, make_context, warehouse, schema
):
    if schema is not None:
        schema = pa.schema(
            [
                ("customer_id", pa.int64()),
                ("email", pa.string()),
                ("updated_at", pa.timestamp("ms", "UTC")),
            ]
        )
    loaded = Collect()
    flow = etl(
        "customers",
        extract=read_jsonl(customers_file, schema=schema, block_size=4096),
        transform=[validate(Customer, on_error="skip", max_invalid=5)],
        load=loaded,
    )
    ctx = make_context(pipeline="customers")

    flow.run(ctx)

    assert len(loaded.rows) == 2998
    assert sorted(r["customer_id"] for r in loaded.rows) == [
        i for i in range(1, 3001) if i not in (3, 1501)
    ]
    stored = quarantined(warehouse, ctx.run_id)
    assert [(step, reason) for step, reason, _ in stored] == [
        (
            "customers.read_jsonl",
            f"JSONL file {customers_file}: line 1501: field 'customer_id': 'fifteen-oh-one' "
            "is a string, not int64",
        ),
        (
            "customers.read_jsonl",
            f"JSONL file {customers_file}: line 3: field 'customer_id': {{'nested': True}} "
            "is an object, not int64",
        ),
    ]
    assert json.loads(stored[0][2])["customer_id"] == "fifteen-oh-one"
    assert ctx.node_stats.rows_quarantined == 2


def test_without_a_quarantining_step_the_run_fails_naming_file_line_and_field(
    customers_file, make_context
):
    for transform in ([], [validate(Customer, on_error="fail")]):
        flow = etl(
            "customers",
            extract=read_jsonl(customers_file, block_size=4096),
            transform=transform,
            load=Collect(),
        )
        with pytest.raises(FatalError) as info:
            flow.run(make_context(pipeline="customers"))
        assert str(info.value).startswith(
            f"JSONL file {customers_file}: line 3: field 'customer_id': {{'nested': True}} "
            "is an object, not int64"
        )


def test_conflicting_types_in_the_first_block_keep_the_most_frequent(
    tmp_path, make_context, warehouse
):
    path = tmp_path / "first.jsonl"
    path.write_bytes(
        jsonl(
            [
                customer(1),
                customer(2, customer_id=2.5),
                customer(3, customer_id="three"),
                customer(4),
                customer(5, customer_id=None),
            ]
        )
    )

    class Loose(BaseModel):
        customer_id: float | None

    loaded = Collect()
    flow = etl(
        "customers",
        extract=read_jsonl(path),
        transform=[validate(Loose, on_error="skip")],
        load=loaded,
    )
    ctx = make_context(pipeline="customers")
    flow.run(ctx)
    assert [r["customer_id"] for r in loaded.rows] == [1.0, 2.5, 4.0, None]
    ((_, reason, _),) = quarantined(warehouse, ctx.run_id)
    assert (
        reason == f"JSONL file {path}: line 3: field 'customer_id': 'three' is a string, not double"
    )


def test_rejected_rows_count_toward_max_invalid(customers_file, make_context):
    flow = etl(
        "customers",
        extract=read_jsonl(customers_file, block_size=4096),
        transform=[validate(Customer, on_error="skip", max_invalid=1)],
        load=Collect(),
    )
    with pytest.raises(ValidationFailedError, match=r"2 of \d+ rows seen so far are invalid"):
        flow.run(make_context(pipeline="customers"))


def test_a_fraction_budget_is_checked_when_only_rejected_rows_are_left(tmp_path, make_context):
    # no row reaches validate, so only the check at the end of the extraction can fail it
    path = tmp_path / "bad.jsonl"
    path.write_bytes(jsonl([customer(i, customer_id="x") for i in range(1, 5)]))
    flow = etl(
        "customers",
        extract=read_jsonl(path, schema=pa.schema([("customer_id", pa.int64())])),
        transform=[validate(Customer, on_error="skip", max_invalid=0.5)],
        load=Collect(),
    )
    with pytest.raises(ValidationFailedError, match="4 of 4 rows"):
        flow.run(make_context(pipeline="customers"))


def test_a_csv_row_that_does_not_fit_is_quarantined_too(tmp_path, make_context, warehouse):
    path = tmp_path / "c.csv"
    body = "".join(f"{i},user{i}@example.com,2026-01-01T00:00:00Z\n" for i in range(1, 500))
    path.write_text(f"customer_id,email,updated_at\n{body}oops,x@example.com,2026-01-01\n7,a,b,c\n")
    loaded = Collect()
    flow = etl(
        "customers",
        extract=read_csv(path, column_types={"customer_id": pa.int64()}, block_size=2048),
        transform=[validate(Customer, on_error="skip")],
        load=loaded,
    )
    ctx = make_context(pipeline="customers")
    flow.run(ctx)
    assert len(loaded.rows) == 499
    reasons = [reason for _, reason, _ in quarantined(warehouse, ctx.run_id)]
    assert reasons == [
        f"CSV file {path}: line 501: column 'customer_id': cannot read 'oops' as int64",
        f"CSV file {path}: line 502: expected 3 columns, got 4",
    ]


def test_rows_without_a_time_go_to_the_quarantine_with_a_skip_policy(
    tmp_path, make_context, warehouse
):
    path = tmp_path / "t.jsonl"
    path.write_bytes(jsonl([customer(1), customer(2, updated_at=None), customer(3)]))
    loaded = Collect()
    flow = etl(
        "customers",
        extract=read_jsonl(path, time_column="updated_at"),
        transform=[validate(Customer, on_error="skip")],
        load=loaded,
    )
    ctx = make_context(pipeline="customers")
    flow.run(ctx)
    assert [r["customer_id"] for r in loaded.rows] == [1, 3]
    ((_, reason, record),) = quarantined(warehouse, ctx.run_id)
    assert (
        reason == f"JSONL file {path}: line 2: 'updated_at' is empty: the row belongs to no window"
    )
    assert json.loads(record)["customer_id"] == 2


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_a_100_mb_line_names_block_size_file_and_line(tmp_path, make_context, kind):
    huge = "x" * (100 << 20)  # 100 MB: far beyond the default 4 MiB block
    path = tmp_path / f"wide.{kind}"
    if kind == "csv":
        path.write_text("id,text\n1,a\n2,b\n3," + huge + "\n4,c\n")
        source, line = read_csv(path), 4
    else:
        path.write_text('{"id": 1, "text": "a"}\n\n{"id": 2, "text": "' + huge + '"}\n')
        source, line = read_jsonl(path), 3
    flow = etl("wide", extract=source, load=Collect())
    with pytest.raises(RunnerError) as info:
        flow.run(make_context(pipeline="wide"))
    message = str(info.value)
    assert message.startswith(
        f"{'CSV' if kind == 'csv' else 'JSONL'} file {path}: line {line} is longer than "
        f"block_size ({4 << 20} bytes); raise block_size= above the longest row"
    )
    assert "straddl" not in message
    assert len(message) < 500


def parquet(path: Path, **columns: list[object]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def test_a_parquet_file_missing_a_column_fails_naming_file_and_column(tmp_path, make_context):
    parquet(tmp_path / "1.parquet", id=[1], amount=[1.5])
    parquet(tmp_path / "2.parquet", id=[2])
    with pytest.raises(FatalError) as info:
        list(read_parquet(str(tmp_path / "*.parquet")).extract(make_context()))
    assert str(info.value) == (
        f"Parquet file {tmp_path / '2.parquet'}: columns do not match the first file "
        f"({tmp_path / '1.parquet'}): missing amount (missing_columns='null' reads missing "
        "columns as null)"
    )


def test_an_empty_first_parquet_file_still_fixes_the_columns(tmp_path, make_context):
    # the first file has no rows: its columns used to be ignored, and a later file
    # without 'amount' then set the shape, so the warehouse filled in defaults
    pq.write_table(
        pa.table({"id": pa.array([], pa.int64()), "amount": pa.array([], pa.float64())}),
        tmp_path / "1.parquet",
    )
    parquet(tmp_path / "2.parquet", id=[2])
    with pytest.raises(FatalError, match=r"2\.parquet: columns do not match .*missing amount"):
        list(read_parquet(str(tmp_path / "*.parquet")).extract(make_context()))


def test_a_given_parquet_schema_requires_its_columns_unless_missing_columns_null(
    tmp_path, make_context
):
    parquet(tmp_path / "1.parquet", id=[1, 2], extra=["x", "y"])
    schema = pa.schema([("id", pa.int32()), ("amount", pa.float64())])
    with pytest.raises(FatalError, match=re.escape("missing amount")):
        list(read_parquet(str(tmp_path / "1.parquet"), schema=schema).extract(make_context()))

    source = read_parquet(str(tmp_path / "1.parquet"), schema=schema, missing_columns="null")
    batches = list(source.extract(make_context()))
    assert pa.Table.from_batches(batches).to_pylist() == [
        {"id": 1, "amount": None},
        {"id": 2, "amount": None},
    ]
    assert batches[0].schema == schema


def test_the_window_used_by_the_quarantine_is_the_runs(tmp_path, make_context, warehouse):
    path = tmp_path / "w.jsonl"
    path.write_bytes(jsonl([customer(1, customer_id="x")]))
    flow = etl(
        "customers",
        extract=read_jsonl(path, schema=pa.schema([("customer_id", pa.int64())])),
        transform=[validate(Customer, on_error="skip")],
        load=Collect(),
    )
    ctx = make_context(pipeline="customers")
    flow.run(ctx)
    (start,) = warehouse.query_rows(
        f"SELECT window_start FROM {QUARANTINE_TABLE} WHERE run_id = {{r:String}}",
        {"r": ctx.run_id},
    )[0]
    assert start.replace(tzinfo=UTC) == ctx.window.start
