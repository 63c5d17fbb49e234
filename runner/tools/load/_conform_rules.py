"""The rule of each ClickHouse column type: which values fit, and the cast that makes them.

Part of :mod:`runner.tools.load._conform` (whose docstring lists what each type accepts);
apart so that the table reading and batch fitting there stay short.  Each rule is
vectorised with pyarrow compute and reports bad rows as masks or per-row messages.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

_SECONDS_PER_DAY = 86_400
_EPOCH = date(1970, 1, 1)
_INT64 = (-(2**63), 2**63 - 1)
_TICKS_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_FLOAT_NOISE = 2.0**-44


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
