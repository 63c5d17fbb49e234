from datetime import UTC, datetime

import pyarrow as pa
import pytest

from runner.errors import ConfigError, FatalError
from runner.pipeline.factory import etl
from runner.tools.transform.rows import FilterRows, MapRows, filter_rows, map_rows


@pytest.fixture
def batch():
    return pa.record_batch({"id": [1, 2, 3, 4], "qty": [1, 0, 5, 2], "price": [2.5, 1.0, 0.5, 4.0]})


def test_map_rows_maps_and_drops_on_none(batch, make_context):
    def total(row):
        if row["qty"] == 0:
            return None
        return {"id": row["id"], "total": row["qty"] * row["price"]}

    out = map_rows(total).transform(batch, make_context())
    assert out.to_pylist() == [
        {"id": 1, "total": 2.5},
        {"id": 3, "total": 2.5},
        {"id": 4, "total": 8.0},
    ]


def test_map_rows_dropping_every_row_drops_the_batch(batch, make_context):
    assert map_rows(lambda row: None).transform(batch, make_context()) is None


def test_map_rows_as_plain_decorator(batch, make_context):
    @map_rows
    def doubled(row):
        return {**row, "qty": row["qty"] * 2}

    assert isinstance(doubled, MapRows)
    assert doubled.step_name == "doubled"
    assert doubled.describe() == "map_rows(doubled)"
    out = doubled.transform(batch, make_context())
    assert out.column("qty").to_pylist() == [2, 0, 10, 4]


def test_map_rows_decorator_with_schema(batch, make_context):
    @map_rows(schema={"id": "int32", "label": "string"})
    def label(row):
        return {"id": row["id"], "label": f"#{row['id']}"}

    out = label.transform(batch, make_context())
    assert out.schema == pa.schema([("id", pa.int32()), ("label", pa.string())])
    assert out.column("label").to_pylist() == ["#1", "#2", "#3", "#4"]


def test_map_rows_schema_mismatch_is_fatal(batch, make_context):
    step = map_rows(lambda row: {"id": "not a number"}, schema=pa.schema([("id", pa.int64())]))
    with pytest.raises(FatalError, match="do not fit the declared schema"):
        step.transform(batch, make_context())


def test_map_rows_output_has_every_key_any_row_returned(batch, make_context):
    def extra_on_odd(row):
        return {"id": row["id"], "odd": True} if row["id"] % 2 else {"id": row["id"]}

    out = map_rows(extra_on_odd).transform(batch, make_context())
    assert out.schema.names == ["id", "odd"]
    assert out.column("odd").to_pylist() == [True, None, True, None]


def test_map_rows_keeps_input_types_where_values_fit(make_context):
    source = pa.record_batch(
        {
            "small": pa.array([1, 2], pa.int32()),
            "at": pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * 2, pa.timestamp("ms", tz="UTC")),
            "note": pa.array(["x", "y"], pa.string()),
        }
    )
    out = map_rows(lambda row: {**row, "note": None}).transform(source, make_context())
    assert out.schema.field("small").type == pa.int32()
    assert out.schema.field("at").type == pa.timestamp("ms", tz="UTC")
    assert out.schema.field("note").type == pa.string()  # all-null, not the null type


def test_map_rows_changing_a_columns_kind_infers_the_new_type(make_context):
    source = pa.record_batch({"x": pa.array([1, 2], pa.int32())})
    floats = map_rows(lambda row: {"x": row["x"] / 2}).transform(source, make_context())
    assert floats.schema.field("x").type == pa.float64()
    assert floats.column("x").to_pylist() == [0.5, 1.0]
    text = map_rows(lambda row: {"x": str(row["x"])}).transform(source, make_context())
    assert text.schema.field("x").type == pa.string()
    big = map_rows(lambda row: {"x": row["x"] * 2**40}).transform(source, make_context())
    assert big.schema.field("x").type == pa.int64()  # does not fit int32 any more


def test_map_rows_exception_names_transformer_and_row_index(batch, make_context):
    def fragile(row):
        return {"ratio": row["price"] / row["qty"]}

    with pytest.raises(FatalError) as info:
        map_rows(fragile).transform(batch, make_context())
    message = str(info.value)
    assert "map_rows(fragile)" in message
    assert "row index 1 of the batch" in message
    assert "ZeroDivisionError" in message
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_map_rows_non_dict_result_is_fatal(batch, make_context):
    with pytest.raises(FatalError, match="row index 0 of the batch returned a list"):
        map_rows(lambda row: [row]).transform(batch, make_context())


def test_map_rows_values_arrow_cannot_hold_are_fatal(batch, make_context):
    with pytest.raises(FatalError, match="column 'bad'"):
        map_rows(lambda row: {"bad": object()}).transform(batch, make_context())


def test_map_rows_rejects_bad_declarations():
    with pytest.raises(ConfigError, match="function of one row"):
        map_rows(42)  # type: ignore[call-overload]
    with pytest.raises(ConfigError, match="unknown type 'int99'"):
        map_rows(lambda row: row, schema={"x": "int99"})
    with pytest.raises(ConfigError, match="Schema or a mapping"):
        map_rows(lambda row: row, schema=["x"])  # type: ignore[arg-type]


def test_map_rows_lambda_name_and_describe():
    step = map_rows(lambda row: row)
    assert step.step_name == "map_rows"
    assert step.describe() == "map_rows(lambda)"
    assert map_rows(lambda row: row, name="clean").step_name == "clean"


def test_filter_rows_keeps_rows_where_predicate_is_true(batch, make_context):
    out = filter_rows(lambda row: row["qty"] > 1).transform(batch, make_context())
    assert out.column("id").to_pylist() == [3, 4]
    assert out.schema == batch.schema


def test_filter_rows_as_decorator_and_zero_copy_when_all_kept(batch, make_context):
    @filter_rows
    def everything(row):
        return True

    assert isinstance(everything, FilterRows)
    assert everything.describe() == "filter_rows(everything)"
    assert everything.transform(batch, make_context()) is batch

    @filter_rows(name="positive")
    def has_qty(row):
        return row["qty"]  # truthiness is enough

    assert has_qty.step_name == "positive"
    assert has_qty.transform(batch, make_context()).column("id").to_pylist() == [1, 3, 4]


def test_filter_rows_exception_names_row_index(batch, make_context):
    def picky(row):
        if row["id"] == 3:
            raise ValueError("no threes")
        return True

    with pytest.raises(
        FatalError,
        match=r"filter_rows\(picky\): row index 2 of the batch raised ValueError: no threes",
    ):
        filter_rows(picky).transform(batch, make_context())


def test_filter_rows_rejects_non_callable():
    with pytest.raises(ConfigError, match="function of one row"):
        filter_rows("qty > 1")  # type: ignore[call-overload]


def test_row_tools_in_a_flow(make_context):
    loaded = []

    @map_rows
    def with_total(row):
        return {"id": row["id"], "total": row["qty"] * row["price"]}

    pipeline = etl(
        "rows_flow",
        extract=[{"id": i, "qty": i % 3, "price": 1.5} for i in range(10)],
        transform=[filter_rows(lambda row: row["qty"] > 0), with_total],
        load=loaded.append,
    )
    ctx = make_context(pipeline="rows_flow")
    pipeline.run(ctx)
    rows = pa.Table.from_batches(loaded).to_pylist()
    assert rows == [{"id": i, "total": (i % 3) * 1.5} for i in range(10) if i % 3]
    assert ctx.node_stats.rows_loaded == len(rows)


def test_row_error_in_a_flow_carries_the_step(make_context):
    pipeline = etl(
        "rows_fail",
        extract=[{"id": 1}, {"id": 0}],
        transform=[map_rows(lambda row: {"inv": 1 / row["id"]}, name="invert")],
        load=lambda batch: None,
    )
    with pytest.raises(FatalError) as info:
        pipeline.run(make_context(pipeline="rows_fail"))
    assert info.value.step == "invert"
    assert "row index 1 of the batch" in str(info.value)
