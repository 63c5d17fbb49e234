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
refuses or converts it itself).

A batch column the table does not have is a configuration error: ClickHouse would refuse
the insert anyway, and naming it early is kinder.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.warehouse.client import Warehouse

_WRAPPERS = re.compile(r"^(LowCardinality|Nullable)\((.*)\)$")
_CALL = re.compile(r"^(\w+)(?:\((.*)\))?$")
_ENUM_ITEM = re.compile(r"'((?:[^'\\]|\\.)*)'\s*=\s*(-?\d+)")
_DECIMAL_PRECISION = {"Decimal32": 9, "Decimal64": 18, "Decimal128": 38, "Decimal256": 76}
_INTEGER_BITS = {"8": 8, "16": 16, "32": 32, "64": 64}
_SECONDS_PER_DAY = 86_400
_EPOCH = date(1970, 1, 1)
#: Ranges that hold on every supported engine; Date32 and DateTime64 are widened by
#: asking the engine (ClickHouse 26 stores years 1 to 9999, older servers 1900 to 2299).
DATE_DAYS = (0, 65_535)  # 1970-01-01 .. 2149-06-06
DATETIME_SECONDS = (0, 4_294_967_295)  # 1970-01-01 00:00:00 .. 2106-02-07 06:28:15
OLD_DATE32_DAYS = (-25_567, 120_529)  # 1900-01-01 .. 2299-12-31
OLD_DATETIME64_SECONDS = (-2_208_988_800, 10_413_791_999)  # 1900-01-01 .. 2299-12-31 23:59:59
_INT64 = (-(2**63), 2**63 - 1)
_TICKS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_SHOWN_LENGTH = 80
_FLOAT_NOISE = 2.0**-44


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


# ------------------------------------------------------------------------ type rules


class Rule(ABC):
    """How values of one ClickHouse type are checked (and cast) before an insert."""

    def __init__(self, column_type: str) -> None:
        self.column_type = column_type

    @abstractmethod
    def apply(self, values: pa.Array) -> tuple[pa.Array, list[_Problem]]:
        """The values to insert, and the problems found (each a mask of bad rows)."""


@dataclass
class _Problem:
    """Rows of one column that fail one check; ``detail`` says how, per row if known."""

    mask: pa.Array | None = None  # boolean, True for a bad row
    rows: dict[int, str] = field(default_factory=dict)  # row -> engine's own message
    detail: str = ""


class PassRule(Rule):
    """Types not checked here: the values go on unchanged."""

    def apply(self, values: pa.Array) -> tuple[pa.Array, list[_Problem]]:
        """Nothing to check."""
        return values, []


class CastRule(Rule):
    """Numbers and Bool: an Arrow safe cast to the column's exact type, plus checks."""

    def __init__(self, column_type: str, target: pa.DataType) -> None:
        super().__init__(column_type)
        self.target = target

    def castable(self, source: pa.DataType) -> bool:
        """Whether this rule casts values of ``source`` (others go on unchanged)."""
        import pyarrow as pa

        kinds = (
            pa.types.is_integer,
            pa.types.is_floating,
            pa.types.is_decimal,
            pa.types.is_boolean,
            pa.types.is_string,
            pa.types.is_large_string,
        )
        return any(kind(source) for kind in kinds)

    def cast(self, values: pa.Array) -> pa.Array:
        """Arrow's safe cast to the target type (raises ArrowInvalid on a bad value)."""
        import pyarrow.compute as pc

        return pc.cast(values, self.target, safe=True)

    def before(self, values: pa.Array) -> list[_Problem]:
        """Checks on the source values that the cast does not make."""
        del values
        return []

    def after(self, values: pa.Array, cast: pa.Array) -> list[_Problem]:
        """Checks comparing the cast values with the source values."""
        del values, cast
        return []

    def apply(self, values: pa.Array) -> tuple[pa.Array, list[_Problem]]:
        """Cast with checks; the rows a failed cast chokes on are found by halving."""
        import pyarrow as pa

        source = _decoded(values)
        if source.type == self.target:
            return values, []
        if not self.castable(source.type):
            return values, []
        problems = self.before(source)
        try:
            cast = self.cast(source)
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return values, problems  # no Arrow cast: ClickHouse converts (or refuses) it
        except pa.ArrowInvalid:
            return values, [*problems, _Problem(rows=_failing_rows(source, self.cast))]
        return cast, [*problems, *self.after(source, cast)]


class IntegerRule(CastRule):
    """Int8-Int64 and UInt8-UInt64; Arrow refuses overflow, fractions, NaN and infinity."""


class FloatRule(CastRule):
    """Float32 and Float64; a finite value must not become infinite in a Float32."""

    def after(self, values: pa.Array, cast: pa.Array) -> list[_Problem]:
        """Overflow to infinity (Arrow's float-to-float cast does not check it)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not (pa.types.is_floating(values.type) and cast.type.bit_width < values.type.bit_width):
            return []
        overflow = pc.and_(pc.is_finite(values), pc.invert(pc.is_finite(cast)))
        return [_Problem(mask=overflow, detail="too large for Float32")]


class DecimalRule(CastRule):
    """Decimal(P, S): no digit lost, no precision exceeded; floats must round exactly."""

    def cast(self, values: pa.Array) -> pa.Array:
        """Integers go through a decimal wide enough for any of them, then to the target."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if pa.types.is_integer(values.type):
            scale = self.target.scale
            wide = pa.decimal128(38, scale) if scale <= 38 - 20 else pa.decimal256(76, scale)
            values = pc.cast(values, wide, safe=True)
        return pc.cast(values, self.target, safe=True)

    def after(self, values: pa.Array, cast: pa.Array) -> list[_Problem]:
        """A float must have no more decimal places than the scale, beyond float noise.

        Arrow rounds a float to the scale (0.30000000000000004 becomes 0.30, as meant);
        1.239 into two places is refused.  A value is refused when, scaled by 10^S, it
        is further from a whole number than 2^-44 of itself (about 256 units in the last
        place of a double), so the noise of float arithmetic passes and a real digit
        does not.
        """
        del cast
        import pyarrow as pa
        import pyarrow.compute as pc

        if not pa.types.is_floating(values.type):
            return []
        scaled = pc.multiply(values.cast(pa.float64()), float(10**self.target.scale))
        off = pc.abs(pc.subtract(scaled, pc.round(scaled)))
        noise = pc.multiply(pc.abs(scaled), _FLOAT_NOISE)
        digits = pc.greater(off, noise)
        return [_Problem(mask=digits, detail=f"more decimal places than {self.column_type}")]


class BoolRule(CastRule):
    """Bool: from booleans, text Arrow parses, or the integers 0 and 1."""

    def before(self, values: pa.Array) -> list[_Problem]:
        """Integers other than 0 and 1 would all become true."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not pa.types.is_integer(values.type):
            return []
        other = pc.invert(pc.is_in(values, pa.array([0, 1], values.type)))
        return [_Problem(mask=other, detail="only 0 and 1 are Bool values")]


class RangeRule(Rule):
    """Date, Date32, DateTime, DateTime64: the source's values, inside the column's range.

    ``low`` and ``high`` are days (Date, Date32) or seconds (DateTime, DateTime64); the
    bounds are inclusive, and the high bound covers the whole of its last day or second.
    """

    def __init__(self, column_type: str, *, low: int, high: int, in_days: bool) -> None:
        super().__init__(column_type)
        self.low, self.high, self.in_days = low, high, in_days

    def apply(self, values: pa.Array) -> tuple[pa.Array, list[_Problem]]:
        """Compare the stored integers with the bounds in the source's own unit."""
        import pyarrow as pa
        import pyarrow.compute as pc

        source = _decoded(values)
        kind = source.type
        per_second: int | None = None
        if pa.types.is_timestamp(kind):
            integers, per_second = source.view(pa.int64()), _TICKS_PER_SECOND[kind.unit]
            per_unit = per_second * (_SECONDS_PER_DAY if self.in_days else 1)
        elif pa.types.is_date32(kind):
            integers, per_unit = source.view(pa.int32()), 1
            if not self.in_days:  # a date into a date-time column: its midnight, in seconds
                integers = pc.multiply(integers.cast(pa.int64()), _SECONDS_PER_DAY)
        elif pa.types.is_date64(kind):
            integers, per_unit = source.view(pa.int64()), 1_000
            per_unit *= _SECONDS_PER_DAY if self.in_days else 1
        elif pa.types.is_integer(kind):  # counted in days or seconds, as ClickHouse does
            integers, per_unit = source, 1
        else:
            return values, []
        low = max(self.low * per_unit, _INT64[0])
        high = min((self.high + 1) * per_unit - 1, _INT64[1])
        if pa.types.is_unsigned_integer(integers.type):
            integers = _as_int64_capped(integers)
        outside = pc.or_(pc.less(integers, low), pc.greater(integers, high))
        return values, [_Problem(mask=outside, detail=f"outside {self.describe_range()}")]

    def describe_range(self) -> str:
        """E.g. ``1970-01-01..2149-06-06``."""
        if self.in_days:
            return f"{_day(self.low)}..{_day(self.high)}"
        return f"{_second(self.low)}..{_second(self.high)}"


class FixedStringRule(Rule):
    """FixedString(N): at most N bytes (shorter values are padded by ClickHouse)."""

    def __init__(self, column_type: str, size: int) -> None:
        super().__init__(column_type)
        self.size = size

    def apply(self, values: pa.Array) -> tuple[pa.Array, list[_Problem]]:
        """Compare byte lengths with N."""
        import pyarrow as pa
        import pyarrow.compute as pc

        source = _decoded(values)
        if not any(
            kind(source.type)
            for kind in (
                pa.types.is_string,
                pa.types.is_large_string,
                pa.types.is_binary,
                pa.types.is_large_binary,
            )
        ):
            return values, []
        long = pc.greater(pc.binary_length(source), self.size)
        return values, [_Problem(mask=long, detail=f"longer than {self.size} bytes")]


class EnumRule(Rule):
    """Enum8/Enum16: text must be one of its names, integers one of its values."""

    def __init__(self, column_type: str, items: dict[str, int]) -> None:
        super().__init__(column_type)
        self.items = items

    def apply(self, values: pa.Array) -> tuple[pa.Array, list[_Problem]]:
        """Membership, vectorised."""
        import pyarrow as pa
        import pyarrow.compute as pc

        source = _decoded(values)
        if pa.types.is_string(source.type) or pa.types.is_large_string(source.type):
            allowed = pa.array(list(self.items), source.type)
        elif pa.types.is_integer(source.type):
            allowed = pa.array(sorted(set(self.items.values())), pa.int64())
            source = _as_int64_capped(source)
        else:
            return values, []
        other = pc.and_(pc.is_valid(source), pc.invert(pc.is_in(source, allowed)))
        return values, [_Problem(mask=other, detail="not a value of the Enum")]


class UnsignedWideRule(Rule):
    """UInt128/UInt256: a negative integer would wrap around."""

    def apply(self, values: pa.Array) -> tuple[pa.Array, list[_Problem]]:
        """Integers must not be negative."""
        import pyarrow as pa
        import pyarrow.compute as pc

        source = _decoded(values)
        if not pa.types.is_signed_integer(source.type):
            return values, []
        return values, [_Problem(mask=pc.less(source, 0), detail="negative")]


# ---------------------------------------------------------------- reading the table


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


def _failing_rows(values: pa.Array, cast: Any) -> dict[int, str]:
    """The rows whose values a cast refuses, found by halving: O(bad rows x log n) casts."""
    import pyarrow as pa

    found: dict[int, str] = {}
    pending = [(0, len(values))]
    while pending:
        start, length = pending.pop()
        try:
            cast(values.slice(start, length))
        except pa.ArrowInvalid as exc:
            if length == 1:
                found[start] = " ".join(str(exc).split())
            else:
                half = length // 2
                pending += [(start + half, length - half), (start, half)]
    return found


def _decoded(values: pa.Array) -> pa.Array:
    """Dictionary-encoded values as plain ones (what a check compares)."""
    import pyarrow as pa

    if pa.types.is_dictionary(values.type):
        return values.dictionary_decode()
    return values


def _as_int64_capped(values: pa.Array) -> pa.Array:
    """Unsigned integers as int64 for comparisons; values beyond int64 become its maximum."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if values.type == pa.uint64():
        values = pc.min_element_wise(values, pa.scalar(2**63 - 1, pa.uint64()))
    return values.cast(pa.int64())


def _shown(value: pa.Scalar) -> str:
    """A value as a message shows it: short, one line."""
    try:
        python = value.as_py()
    except (ValueError, OverflowError):  # a date or time beyond what Python holds: raw
        return f"{getattr(value, 'value', '?')} ({value.type})"
    text = python.isoformat() if isinstance(python, datetime | date) else repr(python)
    text = " ".join(text.split())
    return text if len(text) <= _SHOWN_LENGTH else text[: _SHOWN_LENGTH - 3] + "..."


def _day(days: int) -> str:
    try:
        return (_EPOCH + timedelta(days=days)).isoformat()
    except OverflowError:
        return str(days)


def _second(seconds: int) -> str:
    try:
        return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)).strftime(
            "%Y-%m-%d %H:%M:%S"
        )
    except OverflowError:
        return str(seconds)
