from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from runner.errors import ConfigError, FatalError
from runner.pipeline.factory import etl
from runner.tools.transform.columns import cast, drop, parse_type, rename, select


@pytest.fixture
def batch():
    return pa.record_batch(
        {
            "id": pa.array([1, 2, 3], pa.int32()),
            "name": ["a", "b", "c"],
            "qty": ["1", "20", "300"],
        }
    )


# rename


def test_rename_renames_and_keeps_data(batch, make_context):
    out = rename({"id": "order_id", "qty": "quantity"}).transform(batch, make_context())
    assert out.schema.names == ["order_id", "name", "quantity"]
    assert out.column("order_id").to_pylist() == [1, 2, 3]
    assert out.schema.field("order_id").type == pa.int32()


def test_rename_missing_column_names_it_and_the_available_ones(batch, make_context):
    with pytest.raises(
        FatalError, match=r"column 'idd' not found; available columns: id, name, qty"
    ):
        rename({"idd": "x"}).transform(batch, make_context())


def test_rename_onto_an_existing_column_fails(batch, make_context):
    with pytest.raises(FatalError, match="two columns named 'name'"):
        rename({"id": "name"}).transform(batch, make_context())


def test_rename_can_swap_names(batch, make_context):
    out = rename({"id": "name", "name": "id"}).transform(batch, make_context())
    assert out.schema.names == ["name", "id", "qty"]
    assert out.column("id").to_pylist() == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({}, "at least one column"),
        ({"a": "x", "b": "x"}, "'x' is named more than once"),
        ({"a": ""}, "non-empty strings"),
        (["a"], "mapping"),
    ],
)
def test_rename_rejects_bad_declarations(mapping, message):
    with pytest.raises(ConfigError, match=message):
        rename(mapping)


def test_rename_describe():
    assert rename({"a": "b", "c": "d"}).describe() == "rename(a→b, c→d)"


# select / drop


def test_select_subsets_and_reorders(batch, make_context):
    out = select("qty", "id").transform(batch, make_context())
    assert out.schema.names == ["qty", "id"]
    assert out.column("qty").to_pylist() == ["1", "20", "300"]


def test_select_missing_column_is_fatal_and_lists_available(batch, make_context):
    with pytest.raises(FatalError) as info:
        select("id", "price").transform(batch, make_context())
    assert "'price'" in str(info.value)
    assert "available columns: id, name, qty" in str(info.value)


def test_select_rejects_empty_and_repeated():
    with pytest.raises(ConfigError, match="at least one column"):
        select()
    with pytest.raises(ConfigError, match="'id' is named more than once"):
        select("id", "id")


def test_drop_removes_columns(batch, make_context):
    out = drop("name").transform(batch, make_context())
    assert out.schema.names == ["id", "qty"]
    assert drop("name", "qty").describe() == "drop(name, qty)"


def test_drop_missing_column_is_fatal_unless_missing_ok(batch, make_context):
    ctx = make_context()
    with pytest.raises(FatalError, match="column 'nope' not found"):
        drop("nope").transform(batch, ctx)
    out = drop("nope", "name", missing_ok=True).transform(batch, ctx)
    assert out.schema.names == ["id", "qty"]


# cast


def test_cast_with_type_names(make_context):
    batch = pa.record_batch(
        {
            "n": ["1", "2"],
            "f": [1, 2],
            "s": [10, 20],
            "at": ["2026-01-01T10:00:00Z", "2026-01-02T11:30:00Z"],
            "d": ["2026-01-01", "2026-02-03"],
            "b": ["true", "false"],
            "amount": ["1.5", "2.25"],
        }
    )
    out = cast(
        {
            "n": "int64",
            "f": "float64",
            "s": "string",
            "at": "timestamp[ms, tz=UTC]",
            "d": "date32",
            "b": "bool",
            "amount": "decimal128(18,4)",
        }
    ).transform(batch, make_context())
    assert out.schema.types == [
        pa.int64(),
        pa.float64(),
        pa.string(),
        pa.timestamp("ms", tz="UTC"),
        pa.date32(),
        pa.bool_(),
        pa.decimal128(18, 4),
    ]
    row = out.to_pylist()[1]
    assert row == {
        "n": 2,
        "f": 2.0,
        "s": "20",
        "at": datetime(2026, 1, 2, 11, 30, tzinfo=UTC),
        "d": date(2026, 2, 3),
        "b": False,
        "amount": Decimal("2.2500"),
    }


def test_cast_accepts_pyarrow_types_and_keeps_other_columns(batch, make_context):
    out = cast({"id": pa.int64()}).transform(batch, make_context())
    assert out.schema.field("id").type == pa.int64()
    assert out.column("name").equals(batch.column("name"))
    assert out.column("id").to_pylist() == [1, 2, 3]


def test_cast_failure_names_column_type_and_reason(batch, make_context):
    bad = batch.set_column(2, "qty", pa.array(["1", "x2", "3"]))
    with pytest.raises(FatalError) as info:
        cast({"qty": "int64"}).transform(bad, make_context())
    message = str(info.value)
    assert "'qty'" in message
    assert "int64" in message
    assert "x2" in message  # pyarrow's reason names the bad value
    assert "\n" not in message


def test_cast_safe_refuses_loss_and_unsafe_allows_it(make_context):
    batch = pa.record_batch({"x": [1.5, 2.0]})
    ctx = make_context()
    with pytest.raises(FatalError, match=r"'x'.*int64"):
        cast({"x": "int64"}).transform(batch, ctx)
    out = cast({"x": "int64"}, safe=False).transform(batch, ctx)
    assert out.column("x").to_pylist() == [1, 2]


def test_cast_missing_column(batch, make_context):
    with pytest.raises(FatalError, match="column 'price' not found"):
        cast({"price": "float64"}).transform(batch, make_context())


def test_cast_unknown_type_fails_at_declaration():
    with pytest.raises(ConfigError, match=r"column 'qty'.*unknown type 'integer'"):
        cast({"qty": "integer"})
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        cast({"at": "timestamp[ms, tz=Mars/Olympus]"})


def test_cast_describe():
    assert cast({"at": "timestamp[ms, tz=UTC]"}).describe() == "cast(at: timestamp[ms, tz=UTC])"


@pytest.mark.parametrize(
    "arrow_type",
    [
        pa.int8(),
        pa.uint64(),
        pa.float32(),
        pa.float64(),
        pa.string(),
        pa.large_string(),
        pa.binary(),
        pa.bool_(),
        pa.date32(),
        pa.date64(),
        pa.timestamp("ns"),
        pa.timestamp("ms", tz="UTC"),
        pa.timestamp("us", tz="Europe/Paris"),
        pa.timestamp("s", tz="+02:00"),
        pa.decimal128(18, 4),
        pa.decimal256(60, 10),
        pa.time64("us"),
        pa.duration("ms"),
    ],
)
def test_parse_type_round_trips_pyarrow_type_names(arrow_type):
    assert parse_type(str(arrow_type)) == arrow_type


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("float64", pa.float64()),
        ("double", pa.float64()),
        ("str", pa.string()),
        ("timestamp[ms,tz=UTC]", pa.timestamp("ms", tz="UTC")),
        ("decimal(18, 2)", pa.decimal128(18, 2)),
        ("decimal(50,2)", pa.decimal256(50, 2)),
        (" int32 ", pa.int32()),
    ],
)
def test_parse_type_aliases(text, expected):
    assert parse_type(text) == expected


def test_parse_type_rejects_bad_decimal_and_non_types():
    with pytest.raises(ConfigError, match="decimal128"):
        parse_type("decimal128(50,2)")
    with pytest.raises(ConfigError, match="not int"):
        parse_type(64)  # type: ignore[arg-type]


def test_column_tools_in_a_flow(make_context):
    loaded = []

    def extract():
        yield from [{"ID": str(i), "Name": f"n{i}", "junk": i} for i in range(5)]

    pipeline = etl(
        "columns_flow",
        extract=extract,
        transform=[
            rename({"ID": "id", "Name": "name"}),
            drop("junk"),
            cast({"id": "int64"}),
            select("name", "id"),
        ],
        load=loaded.append,
    )
    ctx = make_context(pipeline="columns_flow")
    pipeline.run(ctx)
    table = pa.Table.from_batches(loaded)
    assert table.schema.names == ["name", "id"]
    assert table.column("id").type == pa.int64()
    assert table.column("id").to_pylist() == [0, 1, 2, 3, 4]
    assert pipeline.describe()["transform"] == [
        "rename(ID→id, Name→name)",
        "drop(junk)",
        "cast(id: int64)",
        "select(name, id)",
    ]
