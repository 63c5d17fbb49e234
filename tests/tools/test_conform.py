"""Reading ClickHouse column types into the checks of runner.tools.load._conform (chDB)."""

import pyarrow as pa
import pytest

from runner.errors import ConfigError
from runner.tools.load._conform import (
    Column,
    DecimalRule,
    EngineRanges,
    EnumRule,
    FixedStringRule,
    IntegerRule,
    PassRule,
    RangeRule,
    conform,
    parse_type,
    read_columns,
)

OLD = EngineRanges()


@pytest.mark.parametrize(
    ("column_type", "nullable", "rule", "detail"),
    [
        ("UInt8", False, IntegerRule, pa.uint8()),
        ("LowCardinality(Nullable(Int16))", True, IntegerRule, pa.int16()),
        ("Nullable(Decimal(9, 2))", True, DecimalRule, pa.decimal128(9, 2)),
        ("Decimal64(4)", False, DecimalRule, pa.decimal128(18, 4)),
        ("Decimal(60, 10)", False, DecimalRule, pa.decimal256(60, 10)),
        ("FixedString(16)", False, FixedStringRule, 16),
        ("Enum8('a\\'b' = 1, 'x=y, z' = -2)", False, EnumRule, {"a'b": 1, "x=y, z": -2}),
        # 1900 (the old engine's start) to where Int64 nanoseconds end, in 2262
        ("DateTime64(9, 'UTC')", False, RangeRule, (-2208988800, 9223372035)),
        ("DateTime64(3)", False, RangeRule, OLD.datetime64_seconds),
        ("Date32", False, RangeRule, OLD.date32_days),
        ("Array(UInt8)", False, PassRule, None),
        ("Map(String, UInt64)", False, PassRule, None),
        ("Int256", False, PassRule, None),
        ("String", False, PassRule, None),
    ],
)
def test_types_become_their_checks(column_type, nullable, rule, detail):
    is_nullable, found = parse_type(column_type, OLD)
    assert (is_nullable, type(found)) == (nullable, rule)
    if rule in (IntegerRule, DecimalRule):
        assert found.target == detail
    elif rule is FixedStringRule:
        assert found.size == detail
    elif rule is EnumRule:
        assert found.items == detail
    elif rule is RangeRule:
        assert (found.low, found.high) == detail


def test_columns_are_read_once_with_the_engine_ranges(warehouse):
    warehouse.command(
        f"CREATE TABLE {warehouse.table('t')} (a UInt8, b Date32, c UInt8 MATERIALIZED a, "
        "d UInt8 ALIAS a, e UInt8 DEFAULT 3) ENGINE = MergeTree ORDER BY a"
    )
    columns = read_columns(warehouse, warehouse.database, "t")
    assert list(columns) == ["a", "b", "e"]  # MATERIALIZED and ALIAS take no values
    days = (columns["b"].rule.low, columns["b"].rule.high)
    assert days == EngineRanges.ask(warehouse).date32_days
    assert days[0] <= OLD.date32_days[0]  # 26.x reaches further than 1900-2299
    with pytest.raises(ConfigError, match=r"t has no column 'c', 'zz' to insert into"):
        conform(pa.record_batch({"a": [1], "c": [2], "zz": [3]}), columns, target="t")


def test_a_clean_batch_comes_back_cast_and_a_dirty_one_without_its_bad_rows():
    nullable, rule = parse_type("UInt8", OLD)
    columns = {"v": Column("v", "UInt8", nullable, rule)}
    clean = conform(pa.record_batch({"v": pa.array([1, 2], pa.int64())}), columns, target="t")
    assert (clean.batch.column(0).type, clean.rejected) == (pa.uint8(), [])
    dirty = conform(
        pa.record_batch({"v": pa.array([1, 256, 3, None, -4], pa.int64())}), columns, target="t"
    )
    assert dirty.batch.column(0).to_pylist() == [1, 3]
    assert [r.index for r in dirty.rejected] == [1, 3, 4]
    assert "256 does not fit UInt8" in dirty.rejected[0].reason
    assert "null in a column that is not Nullable" in dirty.rejected[1].reason
