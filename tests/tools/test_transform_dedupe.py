import itertools
from datetime import UTC, date, datetime

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.errors import ConfigError, FatalError
from runner.pipeline.factory import etl
from runner.tools.transform.dedupe import Dedupe, dedupe


def run_batches(step, batches, ctx):
    out = []
    for batch in batches:
        result = step.transform(batch, ctx)
        if result is not None:
            out.extend(result.to_pylist())
    return out


def test_drops_repeats_within_and_across_batches_keeping_the_first(make_context):
    step = dedupe("id")
    ctx = make_context()
    first = pa.record_batch({"id": [1, 2, 1, 3], "v": ["a", "b", "c", "d"]})
    second = pa.record_batch({"id": [3, 4, 2, 4], "v": ["e", "f", "g", "h"]})
    assert step.transform(first, ctx).to_pylist() == [
        {"id": 1, "v": "a"},
        {"id": 2, "v": "b"},
        {"id": 3, "v": "d"},
    ]
    assert step.transform(second, ctx).to_pylist() == [{"id": 4, "v": "f"}]


def test_batch_of_only_known_keys_is_dropped_and_new_batch_passes_as_is(make_context):
    step = dedupe("id")
    ctx = make_context()
    batch = pa.record_batch({"id": [1, 2, 3]})
    assert step.transform(batch, ctx) is batch  # nothing to drop: zero-copy
    assert step.transform(batch, ctx) is None


def test_each_run_starts_afresh(make_context):
    step = dedupe("id")
    batch = pa.record_batch({"id": [1, 1, 2]})
    assert step.transform(batch, make_context()).num_rows == 2
    assert step.transform(batch, make_context()).num_rows == 2


def test_multi_column_and_string_keys(make_context):
    batch = pa.record_batch(
        {
            "a": ["x", "x", "y", "x", None, None],
            "b": [1, 2, 1, 1, 1, 1],
            "v": [0, 1, 2, 3, 4, 5],
        }
    )
    out = dedupe("a", "b").transform(batch, make_context())
    assert out.column("v").to_pylist() == [0, 1, 2, 4]  # nulls are one key
    assert dedupe("a").transform(batch, make_context()).column("v").to_pylist() == [0, 2, 4]


def test_int_keys_that_python_hashes_alike_stay_distinct(make_context):
    # CPython hashes -1 like -2, and 2**61 - 1 like 0: fingerprints must not rely on that
    batch = pa.record_batch({"k": [-1, -2, 0, 2**61 - 1], "s": ["a"] * 4})
    assert dedupe("k").transform(batch, make_context()).num_rows == 4
    assert dedupe("k", "s").transform(batch, make_context()).num_rows == 4


@pytest.mark.parametrize(
    "values",
    [
        pa.array([date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 1)]),
        pa.array(
            [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC)] * 1
            + [datetime(2026, 1, 1, tzinfo=UTC)],
            pa.timestamp("ms", tz="UTC"),
        ),
        pa.array([1.5, 2.5, 1.5]),
        pa.array([b"a", b"\xff", b"a"]),
        pa.array(["x", "y", "x"]).dictionary_encode(),
        pa.array([True, False, True]),
    ],
)
def test_key_types(values, make_context):
    batch = pa.record_batch({"k": values, "row": [0, 1, 2]})
    out = dedupe("k").transform(batch, make_context())
    assert out.column("row").to_pylist() == [0, 1]


def test_unhashable_key_type_is_fatal(make_context):
    batch = pa.record_batch({"k": pa.array([[1], [1]])})
    with pytest.raises(FatalError, match=r"key column 'k' of type list<item: int64> cannot be"):
        dedupe("k").transform(batch, make_context())


def test_missing_key_column_is_fatal(make_context):
    batch = pa.record_batch({"id": [1], "name": ["a"]})
    with pytest.raises(FatalError, match=r"column 'key' not found; available columns: id, name"):
        dedupe("id", "key").transform(batch, make_context())


def test_bad_declarations():
    with pytest.raises(ConfigError, match="at least one column"):
        dedupe()
    with pytest.raises(ConfigError, match="only 'first'"):
        dedupe("id", keep="last")
    with pytest.raises(ConfigError, match="named more than once"):
        dedupe("id", "id")


def test_describe():
    assert isinstance(dedupe("a"), Dedupe)
    assert dedupe("a", "b").describe() == "dedupe(a, b)"


rows_strategy = st.lists(
    st.tuples(st.integers(-3, 3), st.sampled_from(["a", "b", None])), max_size=60
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=rows_strategy, cuts=st.lists(st.integers(0, 60), max_size=6), both=st.booleans())
def test_one_row_per_key_whatever_the_batch_split(make_context, rows, cuts, both):
    keys = ("k", "s") if both else ("k",)
    bounds = sorted({0, len(rows), *(c for c in cuts if c <= len(rows))})
    data = {
        "k": [k for k, _ in rows],
        "s": [s for _, s in rows],
        "pos": list(range(len(rows))),
    }
    table = pa.table(
        data, schema=pa.schema([("k", pa.int64()), ("s", pa.string()), ("pos", pa.int64())])
    )
    batches = [
        table.slice(lo, hi - lo).combine_chunks().to_batches()[0]
        for lo, hi in itertools.pairwise(bounds)
        if hi > lo
    ]
    out = run_batches(dedupe(*keys), batches, make_context())

    expected, seen = [], set()
    for pos, (k, s) in enumerate(rows):
        key = (k, s) if both else k
        if key not in seen:
            seen.add(key)
            expected.append(pos)
    assert [r["pos"] for r in out] == expected


def test_dedupe_in_a_flow(make_context, runner_settings):
    loaded = []
    source = [{"id": i % 7, "seq": i} for i in range(50)]
    pipeline = etl(
        "deduped",
        extract=source,
        transform=[dedupe("id")],
        load=loaded.append,
    )
    settings_ = runner_settings.model_copy(update={"batch_rows": 4})
    ctx = make_context(pipeline="deduped", settings=settings_)
    pipeline.run(ctx)
    rows = pa.Table.from_batches(loaded).to_pylist()
    assert rows == [{"id": i, "seq": i} for i in range(7)]
    assert ctx.node_stats.rows_extracted == 50
    assert ctx.node_stats.rows_loaded == 7
