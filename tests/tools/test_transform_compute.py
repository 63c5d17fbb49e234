import pyarrow as pa
import pyarrow.compute as pc
import pytest

from runner.errors import ConfigError, FatalError
from runner.pipeline.factory import etl
from runner.tools.transform.compute import Where, WithColumns, where, with_columns


@pytest.fixture
def batch():
    return pa.record_batch(
        {
            "id": [1, 2, 3, 4],
            "qty": [2, None, 0, 5],
            "price": [1.5, 2.0, 3.0, 0.5],
            "name": ["a", "b", "c", "d"],
        }
    )


def test_with_columns_adds_expression_columns(batch, make_context):
    step = with_columns(total=pc.field("qty") * pc.field("price"), one=pc.scalar(1))
    out = step.transform(batch, make_context())
    assert out.schema.names == ["id", "qty", "price", "name", "total", "one"]
    assert out.column("total").to_pylist() == [3.0, None, 0.0, 2.5]
    assert out.column("one").to_pylist() == [1, 1, 1, 1]
    assert out.column("name") is not None
    assert out.column("name").equals(batch.column("name"))


def test_with_columns_replaces_in_place_and_every_definition_sees_the_input(batch, make_context):
    step = with_columns(id=pc.field("id") * 10, next_id=pc.field("id") + 1)
    out = step.transform(batch, make_context())
    assert out.schema.names == ["id", "qty", "price", "name", "next_id"]
    assert out.column("id").to_pylist() == [10, 20, 30, 40]
    assert out.column("next_id").to_pylist() == [2, 3, 4, 5]  # from the input id


def test_with_columns_function_of_the_batch_and_odd_names(batch, make_context):
    def upper(b):
        return pc.utf8_upper(b.column("name"))

    step = with_columns({"unit price": pc.field("price")}, label=upper, flags=lambda b: [True] * 4)
    out = step.transform(batch, make_context())
    assert out.column("unit price").to_pylist() == [1.5, 2.0, 3.0, 0.5]
    assert out.column("label").to_pylist() == ["A", "B", "C", "D"]
    assert out.column("flags").type == pa.bool_()


def test_with_columns_function_may_return_a_chunked_array(batch, make_context):
    step = with_columns(chunked=lambda b: pa.chunked_array([[1, 2], [3, 4]]))
    assert step.transform(batch, make_context()).column("chunked").to_pylist() == [1, 2, 3, 4]


def test_with_columns_keeps_row_order_on_large_batches(make_context):
    n = 200_000  # several of Acero's internal exec batches
    batch = pa.record_batch({"id": pa.array(range(n), pa.int64())})
    out = with_columns(copy=pc.field("id") + 0).transform(batch, make_context())
    assert out.column("copy").equals(batch.column("id"))
    multiple_of_8 = pc.equal(pc.bit_wise_and(pc.field("id"), 7), 0)
    kept = where(multiple_of_8).transform(batch, make_context())
    assert kept.column("id").to_pylist() == list(range(0, n, 8))


def test_with_columns_missing_field_names_column_and_available(batch, make_context):
    step = with_columns(total=pc.field("qty") * pc.field("cost"))
    with pytest.raises(FatalError) as info:
        step.transform(batch, make_context())
    message = str(info.value)
    assert "total = multiply_checked(qty, cost)" in message
    assert "column 'cost' not found; available columns: id, qty, price, name" in message


def test_with_columns_type_error_names_the_failing_column(batch, make_context):
    step = with_columns(ok=pc.field("id") + 1, bad=pc.field("name") * 2)
    with pytest.raises(FatalError) as info:
        step.transform(batch, make_context())
    message = str(info.value)
    assert "bad = multiply_checked(name, 2) failed" in message
    assert "ok =" not in message
    assert "no kernel matching input types" in message


def test_with_columns_overflow_is_fatal(make_context):
    batch = pa.record_batch({"x": pa.array([2**62], pa.int64())})
    with pytest.raises(FatalError, match="big = multiply_checked"):
        with_columns(big=pc.field("x") * 4).transform(batch, make_context())


def test_with_columns_function_errors(batch, make_context):
    def broken(b):
        raise KeyError("nope")

    ctx = make_context()
    with pytest.raises(FatalError, match=r"x = broken\(batch\) raised KeyError"):
        with_columns(x=broken).transform(batch, ctx)
    with pytest.raises(FatalError, match="returned 2 values for a batch of 4 rows"):
        with_columns(x=lambda b: pa.array([1, 2])).transform(batch, ctx)
    with pytest.raises(FatalError, match="not an array"):
        with_columns(x=lambda b: object()).transform(batch, ctx)


def test_with_columns_rejects_bad_declarations():
    with pytest.raises(ConfigError, match="at least one column"):
        with_columns()
    with pytest.raises(ConfigError, match=r"column 'x' must be a pyarrow\.compute Expression"):
        with_columns(x=5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="non-empty strings"):
        with_columns({"": pc.field("a")})


def test_with_columns_describe():
    step = with_columns(total=pc.field("qty") * pc.field("price"), n=len)
    assert isinstance(step, WithColumns)
    assert step.describe() == "with_columns(total = multiply_checked(qty, price), n = len(batch))"


def test_where_keeps_true_rows_and_drops_null_and_false(batch, make_context):
    out = where(pc.field("qty") > 0).transform(batch, make_context())
    assert out.column("id").to_pylist() == [1, 4]  # qty None -> dropped
    assert out.schema == batch.schema


def test_where_returns_the_batch_itself_when_all_rows_pass(batch, make_context):
    assert where(pc.field("id") > 0).transform(batch, make_context()) is batch


def test_where_with_function_mask(batch, make_context):
    step = where(lambda b: pc.equal(b.column("name"), "c"))
    assert step.transform(batch, make_context()).column("id").to_pylist() == [3]


def test_where_errors(batch, make_context):
    ctx = make_context()
    with pytest.raises(FatalError, match="not a boolean"):
        where(pc.field("qty") + 1).transform(batch, ctx)
    with pytest.raises(FatalError, match="column 'nope' not found"):
        where(pc.field("nope") > 1).transform(batch, ctx)
    with pytest.raises(FatalError, match="no kernel matching"):
        where(pc.field("name") > 1).transform(batch, ctx)
    with pytest.raises(FatalError, match="ZeroDivisionError"):
        where(lambda b: 1 / 0).transform(batch, ctx)
    with pytest.raises(ConfigError, match=r"boolean pyarrow\.compute Expression"):
        where("qty > 1")  # type: ignore[arg-type]


def test_where_describe():
    step = where((pc.field("a") > 1) & (pc.field("b") < 2))
    assert isinstance(step, Where)
    assert step.describe() == "where((a > 1) and (b < 2))"
    assert where(pc.field("a") > 1).describe() == "where(a > 1)"


def test_compute_tools_in_a_flow(make_context, runner_settings):
    loaded = []
    pipeline = etl(
        "compute_flow",
        extract=[{"id": i, "qty": i % 4, "price": 2.0} for i in range(20)],
        transform=[
            with_columns(total=pc.field("qty") * pc.field("price")),
            where(pc.field("total") >= 4),
        ],
        load=loaded.append,
    )
    settings = runner_settings.model_copy(update={"batch_rows": 6})
    ctx = make_context(pipeline="compute_flow", settings=settings)
    pipeline.run(ctx)
    rows = pa.Table.from_batches(loaded).to_pylist()
    assert [r["id"] for r in rows] == [i for i in range(20) if i % 4 >= 2]
    assert all(r["total"] == r["qty"] * 2.0 for r in rows)
    assert ctx.node_stats.batches == 4
