"""Fitting each batch to the target table's column types before it is inserted.

ClickHouse converts Arrow columns to its own types without complaint where a demanding
user would want one: 300 lands in a UInt8 as 44, -1 as 255, 5,000,000,000 in a UInt32
as 705,032,704; 1.9 becomes 1, NaN and null become 0, a date of 1969 becomes 1970-01-01
and one of 2107 becomes 2106-02-07; Decimal(5, 2) takes 12345678 as it is.  So the
ClickHouse loaders read the table's columns once per run (``system.columns``) and fit
every batch to them here, vectorised with pyarrow compute (no Python per row):

* integers (Int8-Int64, UInt8-UInt64), floats, decimals and Bool are cast to the exact
  Arrow type of the column with Arrow's *safe* casts, which refuse a value out of range,
  a fraction into an integer, NaN or infinity into an integer, lost decimal digits and
  text that does not parse; a float into Float32 must not overflow, a float into a
  Decimal must be the decimal it rounds to (0.1 is 0.10, 1.239 is not 1.24), an integer
  into Bool must be 0 or 1;
* Date, Date32, DateTime and DateTime64 columns keep the source's values (ClickHouse
  converts those exactly) but each value must lie in the column's range, which for
  Date32 and DateTime64 depends on the engine's version and is asked from the engine;
  integers into them count days (Date, Date32) or seconds (DateTime, DateTime64), as
  ClickHouse reads them; finer fractions than the column holds are cut off by
  ClickHouse, as its type says;
* FixedString(N) takes values of at most N bytes; Enum8/Enum16 only its names (text) or
  values (integers); unsigned Int128-UInt256 no negative integers;
* a null only goes into a Nullable column (``LowCardinality(Nullable(...))`` too):
  ClickHouse would store the column's default instead; leave a column out of the batch
  to get its DEFAULT.

Everything else is passed on unchanged and left to ClickHouse: String and the other
types (UUID, IPv4/IPv6, Array, Map, Tuple, JSON, ...), text into date/time columns,
floats into date/time columns, and any source type Arrow cannot cast (ClickHouse then
refuses or converts it itself).  The rule of each type is in
:mod:`runner.tools.load._conform_rules`; here the table's types are read and batches fitted.

A batch column the table does not have is a configuration error: ClickHouse would refuse
the insert anyway, and naming it early is kinder.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

from runner.errors import ConfigError
from runner.tools.load._conform_rules import (
    BoolRule,
    DecimalRule,
    EnumRule,
    FixedStringRule,
    FloatRule,
    IntegerRule,
    PassRule,
    RangeRule,
    Rule,
    UnsignedWideRule,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.warehouse.client import Warehouse

__all__ = [
    "BoolRule",
    "Column",
    "Conformed",
    "DecimalRule",
    "EngineRanges",
    "EnumRule",
    "FixedStringRule",
    "FloatRule",
    "IntegerRule",
    "PassRule",
    "RangeRule",
    "Rejected",
    "Rule",
    "UnsignedWideRule",
    "conform",
    "parse_type",
    "read_columns",
]

_WRAPPERS = re.compile(r"^(LowCardinality|Nullable)\((.*)\)$")
_CALL = re.compile(r"^(\w+)(?:\((.*)\))?$")
_ENUM_ITEM = re.compile(r"'((?:[^'\\]|\\.)*)'\s*=\s*(-?\d+)")
_DECIMAL_PRECISION = {"Decimal32": 9, "Decimal64": 18, "Decimal128": 38, "Decimal256": 76}
_INTEGER_BITS = {"8": 8, "16": 16, "32": 32, "64": 64}
#: Ranges that hold on every supported engine; Date32 and DateTime64 are widened by
#: asking the engine (ClickHouse 26 stores years 1 to 9999, older servers 1900 to 2299).
DATE_DAYS = (0, 65_535)  # 1970-01-01 .. 2149-06-06
DATETIME_SECONDS = (0, 4_294_967_295)  # 1970-01-01 00:00:00 .. 2106-02-07 06:28:15
OLD_DATE32_DAYS = (-25_567, 120_529)  # 1900-01-01 .. 2299-12-31
OLD_DATETIME64_SECONDS = (-2_208_988_800, 10_413_791_999)  # 1900-01-01 .. 2299-12-31 23:59:59
_SHOWN_LENGTH = 80


@dataclass(frozen=True)
class EngineRanges:
    """The engine's Date32 range in days and DateTime64 range in seconds."""

    date32_days: tuple[int, int] = OLD_DATE32_DAYS
    datetime64_seconds: tuple[int, int] = OLD_DATETIME64_SECONDS

    @classmethod
    def ask(cls, warehouse: Warehouse) -> EngineRanges:
        """The ranges of this engine: what it makes of the first and last day of 1-9999.

        An engine that stores only 1900-2299 saturates those values to its own limits.
        """
        rows = warehouse.query_rows(
            "SELECT toInt32(toDate32('0001-01-01')), toInt32(toDate32('9999-12-31')), "
            "toInt64(toDateTime64('0001-01-01 00:00:00', 0, 'UTC')), "
            "toInt64(toDateTime64('9999-12-31 23:59:59', 0, 'UTC'))"
        )
        low_day, high_day, low_second, high_second = (int(v) for v in rows[0])
        return cls((low_day, high_day), (low_second, high_second))


@dataclass(frozen=True)
class Rejected:
    """A row that does not fit: its index in the batch and why, in one line."""

    index: int
    reason: str


@dataclass
class Conformed:
    """A batch fitted to the table, and the rows of the input that did not fit."""

    batch: pa.RecordBatch
    rejected: list[Rejected] = field(default_factory=list)


@dataclass(frozen=True)
class Column:
    """One insertable column of the target table and how its values are checked."""

    name: str
    type: str
    nullable: bool
    rule: Rule


def parse_type(column_type: str, ranges: EngineRanges) -> tuple[bool, Rule]:
    """Whether a ClickHouse type takes nulls, and the rule checking its values."""
    inner, nullable = column_type.strip(), False
    while wrapped := _WRAPPERS.match(inner):
        nullable = nullable or wrapped.group(1) == "Nullable"
        inner = wrapped.group(2).strip()
    call = _CALL.match(inner)
    rule = None if call is None else _rule(call.group(1), call.group(2) or "", column_type, ranges)
    return nullable, rule or PassRule(column_type)


def _rule(name: str, args: str, shown: str, ranges: EngineRanges) -> Rule | None:
    """The rule of the type ``name(args)``; None for a type not checked here."""
    import pyarrow as pa

    integer = re.fullmatch(r"(U?)Int(8|16|32|64)", name)
    if integer:
        unsigned, bits = integer.group(1), _INTEGER_BITS[integer.group(2)]
        return IntegerRule(shown, getattr(pa, f"{'u' if unsigned else ''}int{bits}")())
    if name in _DECIMAL_PRECISION or name == "Decimal":
        return _decimal_rule(shown, name, args)
    if name == "FixedString":
        return FixedStringRule(shown, int(args)) if args.strip().isdigit() else None
    if name in {"Enum8", "Enum16", "Enum"}:
        items = {_unescape(label): int(value) for label, value in _ENUM_ITEM.findall(args)}
        return EnumRule(shown, items) if items else None
    if name == "DateTime64":
        low, high = ranges.datetime64_seconds
        first = args.split(",", maxsplit=1)[0].strip()
        ticks = 10 ** (int(first) if first.isdigit() else 3)
        # the engine stores Int64 ticks, so fine precisions reach less far
        low, high = max(low, -(2**63) // ticks + 1), min(high, (2**63 - 1) // ticks - 1)
        return RangeRule(shown, low=low, high=high, in_days=False)
    builders: dict[str, Callable[[], Rule]] = {
        "Float32": lambda: FloatRule(shown, pa.float32()),
        "Float64": lambda: FloatRule(shown, pa.float64()),
        "Bool": lambda: BoolRule(shown, pa.bool_()),
        "Date": lambda: RangeRule(shown, low=DATE_DAYS[0], high=DATE_DAYS[1], in_days=True),
        "Date32": lambda: RangeRule(
            shown, low=ranges.date32_days[0], high=ranges.date32_days[1], in_days=True
        ),
        "DateTime": lambda: RangeRule(
            shown, low=DATETIME_SECONDS[0], high=DATETIME_SECONDS[1], in_days=False
        ),
        "UInt128": lambda: UnsignedWideRule(shown),
        "UInt256": lambda: UnsignedWideRule(shown),
    }
    build = builders.get(name)
    return build() if build is not None else None


def _decimal_rule(shown: str, name: str, args: str) -> Rule | None:
    import pyarrow as pa

    numbers = [int(a) for a in args.split(",") if a.strip().lstrip("-").isdigit()]
    if name == "Decimal":
        precision, scale = (*numbers, 0, 0)[:2] if numbers else (10, 0)
    else:
        precision, scale = _DECIMAL_PRECISION[name], (numbers or [0])[0]
    if not 0 < precision <= 76 or not 0 <= scale <= precision:
        return None
    target = pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
    return DecimalRule(shown, target)


def _unescape(label: str) -> str:
    return re.sub(r"\\(.)", r"\1", label)


def read_columns(warehouse: Warehouse, database: str, table: str) -> dict[str, Column]:
    """The insertable columns of ``database.table`` with their rules, in table order.

    MATERIALIZED and ALIAS columns are left out (ClickHouse refuses values for them).
    The engine's date ranges are asked only when a Date32 or DateTime64 column needs them.
    """
    rows = warehouse.query_rows(
        "SELECT name, type, default_kind FROM system.columns "
        "WHERE database = {db:String} AND table = {t:String} ORDER BY position",
        {"db": database, "t": table},
    )
    types = [(str(n), str(t)) for n, t, kind in rows if str(kind) not in {"MATERIALIZED", "ALIAS"}]
    ranges = EngineRanges()
    if any(re.search(r"\b(Date32|DateTime64)\b", t) for _, t in types):
        ranges = EngineRanges.ask(warehouse)
    columns = {}
    for name, column_type in types:
        nullable, rule = parse_type(column_type, ranges)
        columns[name] = Column(name, column_type, nullable, rule)
    return columns


# --------------------------------------------------------------------- the checking


def conform(batch: pa.RecordBatch, columns: dict[str, Column], *, target: str) -> Conformed:
    """``batch`` cast to the table's types, without the rows that do not fit.

    Rows are checked column by column; a row failing several checks is reported once,
    for its first failing column.  The rows that fit are checked again after the others
    are taken out (a failed cast says nothing about the rest of its column), so the
    result always holds exactly the rows that fit.
    """
    import pyarrow as pa

    unknown = [name for name in batch.schema.names if name not in columns]
    if unknown:
        raise ConfigError(
            f"{target} has no column {', '.join(repr(n) for n in unknown)} to insert into: "
            f"rename or drop it before loading (the table takes {', '.join(columns)})"
        )
    rejected: list[Rejected] = []
    original = batch
    positions: pa.Array | None = None  # rows of the current batch in the original one
    while True:
        arrays, bad = _fit(batch, columns)
        if not bad:
            fitted = pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
            rejected.sort(key=lambda r: r.index)
            return Conformed(fitted, rejected)
        for index, (name, detail) in sorted(bad.items()):
            where = index if positions is None else positions[index].as_py()
            value = _shown(original.column(name)[where])
            rejected.append(
                Rejected(
                    where,
                    f"column {name!r}: {value} does not fit {columns[name].type}"
                    + (f" ({detail})" if detail else ""),
                )
            )
        keep = pa.array(sorted(set(range(batch.num_rows)) - set(bad)), pa.int64())
        positions = keep if positions is None else positions.take(keep)
        batch = batch.take(keep)


def _fit(
    batch: pa.RecordBatch, columns: dict[str, Column]
) -> tuple[list[pa.Array], dict[int, tuple[str, str]]]:
    """The batch's columns after their rules, and the bad rows: row -> (column, detail)."""
    import pyarrow.compute as pc

    arrays: list[pa.Array] = []
    bad: dict[int, tuple[str, str]] = {}
    for name, values in zip(batch.schema.names, batch.columns, strict=True):
        column = columns[name]
        if values.null_count and not column.nullable:
            for index in _true_rows(pc.is_null(values)):
                bad.setdefault(index, (name, "null in a column that is not Nullable"))
        fitted, problems = column.rule.apply(values)
        for problem in problems:
            for index, message in problem.rows.items():
                bad.setdefault(index, (name, message))
            if problem.mask is not None:
                for index in _true_rows(problem.mask):
                    bad.setdefault(index, (name, problem.detail))
        arrays.append(fitted)
    return arrays, bad


def _true_rows(mask: pa.Array) -> list[int]:
    """Indices where ``mask`` is true (nulls count as false); cheap when there are none."""
    import pyarrow.compute as pc

    if not pc.any(mask).as_py():
        return []
    return pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()  # type: ignore[no-any-return]


def _shown(value: pa.Scalar) -> str:
    """A value as a message shows it: short, one line."""
    try:
        python = value.as_py()
    except (ValueError, OverflowError):  # a date or time beyond what Python holds: raw
        return f"{getattr(value, 'value', '?')} ({value.type})"
    text = python.isoformat() if isinstance(python, datetime | date) else repr(python)
    text = " ".join(text.split())
    return text if len(text) <= _SHOWN_LENGTH else text[: _SHOWN_LENGTH - 3] + "..."
