import pyarrow as pa
import pytest

from runner.batches import as_batch, split, to_batches
from runner.errors import FatalError


def test_rows_are_gathered_into_bounded_batches_in_order():
    rows = [{"i": i} for i in range(25)]
    batches = list(to_batches(rows, max_rows=10))
    assert [b.num_rows for b in batches] == [10, 10, 5]
    batches = list(to_batches(iter(rows), max_rows=10))
    assert [b.num_rows for b in batches] == [10, 10, 5]
    assert pa.Table.from_batches(batches).column("i").to_pylist() == list(range(25))


def test_large_batches_and_tables_are_sliced():
    table = pa.table({"i": list(range(1000))})
    batches = list(to_batches([table, table.to_batches()[0], {"i": 1000}], max_rows=300))
    assert max(b.num_rows for b in batches) <= 300
    assert sum(b.num_rows for b in batches) == 2001
    assert list(split(pa.record_batch({"i": []}, schema=pa.schema([("i", pa.int64())])), 10)) == []


def test_unsupported_items_and_unconvertible_rows_fail_clearly():
    with pytest.raises(FatalError, match="expected a pyarrow RecordBatch"):
        list(to_batches([42], max_rows=10))
    with pytest.raises(FatalError, match="cannot be converted to Arrow"):
        list(to_batches([{"a": 1}, {"a": "x"}], max_rows=10))


def test_as_batch_accepts_transform_results():
    batch = pa.record_batch({"a": [1, 2]})
    assert as_batch(batch) is batch
    assert as_batch(None) is None
    assert as_batch([]) is None
    assert as_batch(pa.table({"a": [1]})).num_rows == 1
    assert as_batch([{"a": 3}]).to_pylist() == [{"a": 3}]
    with pytest.raises(FatalError, match="transform returned a str"):
        as_batch("nope")


def test_keys_first_seen_in_later_rows_are_kept():
    """from_pylist alone takes the first row's keys and silently drops the others."""
    rows = [{"a": 1}, {"a": 2, "b": "x"}, {"c": 3.5, "a": 4}]
    (batch,) = to_batches(rows, max_rows=10)
    assert batch.schema.names == ["a", "b", "c"]
    assert batch.to_pylist() == [
        {"a": 1, "b": None, "c": None},
        {"a": 2, "b": "x", "c": None},
        {"a": 4, "b": None, "c": 3.5},
    ]
