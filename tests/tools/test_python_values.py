"""Row-level transforms see the same Python values as pyarrow's to_pylist, built faster."""

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.tools.transform._python_values import batch_rows, column_values
from runner.tools.transform.rows import map_rows

INSTANTS = [
    datetime(2026, 3, 29, 0, 59, 59, 999_000, tzinfo=UTC),
    None,
    datetime(1, 1, 3, tzinfo=UTC),
]


@pytest.mark.parametrize("zone", [None, "UTC", "Europe/Berlin", "+05:30", "America/New_York"])
@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_timestamps_match_pyarrow(zone, unit):
    values = [v if v is None or zone else v.replace(tzinfo=None) for v in INSTANTS]
    if unit == "ns":
        values = [v for v in values if v is None or v.year > 1700]  # ns covers 1677-2262
    column = pa.array(values, pa.timestamp(unit, zone))
    fast = column_values(column)
    assert fast == column.to_pylist()
    assert [v.tzinfo if v else None for v in fast] == [
        v.tzinfo if v else None for v in column.to_pylist()
    ]


def test_out_of_range_and_empty_columns_take_pyarrows_path():
    far = pa.array([253_402_300_800_000_000 + 1], pa.int64()).cast(pa.timestamp("us", "UTC"))
    with pytest.raises(OverflowError):  # pyarrow's own error, as with to_pylist
        column_values(far)
    assert column_values(pa.array([None, None], pa.timestamp("ms", "UTC"))) == [None, None]
    assert column_values(pa.chunked_array([], pa.timestamp("ms", "UTC"))) == []


@given(st.lists(st.one_of(st.none(), st.integers(-(10**12), 10**12)), max_size=50))
def test_any_millisecond_column_matches_pyarrow(millis):
    column = pa.array(millis, pa.int64()).cast(pa.timestamp("ms", "Asia/Kathmandu"))
    assert column_values(column) == column.to_pylist()


def test_batch_rows_are_pyarrows_rows():
    batch = pa.record_batch(
        {
            "id": pa.array([1, 2], pa.int64()),
            "at": pa.array(INSTANTS[:2], pa.timestamp("ms", "UTC")),
            "tag": pa.array(["a", "b"]).dictionary_encode(),
        }
    )
    assert batch_rows(batch) == batch.to_pylist()


def test_map_rows_keeps_unchanged_columns_and_notices_changed_types():
    at = pa.array([datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=i) for i in range(3)])
    batch = pa.record_batch(
        {
            "at": at.cast(pa.timestamp("ms", "UTC")),
            "tag": pa.array(["x", "y", "x"]).dictionary_encode(),
            "n": pa.array([1, 0, 1], pa.int8()),
        }
    )

    def as_flags(row):
        row["n"] = bool(row["n"])  # equal values (1 == True), another type
        return row

    out = map_rows(as_flags).transform(batch, None)
    assert out.schema.field("at").type == pa.timestamp("ms", "UTC")  # reused as it was
    assert out.column("tag").equals(batch.column("tag"))  # still dictionary-encoded
    assert out.column("n").type == pa.bool_()
    assert out.column("n").to_pylist() == [True, False, True]
