"""Column-level reshaping: rename, select, drop and cast.

These touch the schema only (cast also converts the values), so they are zero-copy
except for cast.  Column names are checked on every batch, because a batch's schema is
only known at run time; a missing column is a FatalError that lists the columns there
are, which is usually enough to spot the typo.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from runner.errors import ConfigError, FatalError
from runner.pipeline.steps import Transformer

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.context import RunContext


__all__ = ["Cast", "Drop", "Rename", "Select", "cast", "drop", "rename", "select"]


_TIMESTAMP = re.compile(r"timestamp\[\s*(s|ms|us|ns)\s*(?:,\s*tz\s*=\s*([^\]\s][^\]]*?))?\s*\]")
_DECIMAL = re.compile(r"decimal(32|64|128|256)?\(\s*(\d+)\s*,\s*(-?\d+)\s*\)")
_OFFSET = re.compile(r"[+-]\d{2}:\d{2}")
_TYPE_EXAMPLES = "int64, float64, string, bool, date32, timestamp[ms, tz=UTC], decimal128(18,4)"


def _check_timezone(tz: str, text: str) -> None:
    """Arrow accepts any time-zone string and fails later, per value; fail at declaration."""
    if _OFFSET.fullmatch(tz):
        return
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"type {text!r}: unknown time zone {tz!r} (use an IANA name such as UTC or "
            "Europe/Paris, or an offset such as +02:00)"
        ) from None


def parse_type(spec: pa.DataType | str) -> pa.DataType:
    """A pyarrow type from a DataType or its text form (``str(type)`` round-trips)."""
    import pyarrow as pa

    if isinstance(spec, pa.DataType):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(
            f"expected a pyarrow DataType or a type name such as {_TYPE_EXAMPLES}, "
            f"not {type(spec).__name__}"
        )
    text = spec.strip()
    match = _TIMESTAMP.fullmatch(text)
    if match:
        unit, tz = match.group(1), match.group(2)
        if tz:
            _check_timezone(tz.strip(), spec)
        return pa.timestamp(unit, tz=tz.strip() if tz else None)
    match = _DECIMAL.fullmatch(text)
    if match:
        return _decimal_type(spec, match.group(1), int(match.group(2)), int(match.group(3)))
    try:
        return pa.type_for_alias(text)
    except (ValueError, KeyError):
        raise ConfigError(f"unknown type {spec!r}; use e.g. {_TYPE_EXAMPLES}") from None


def _decimal_type(text: str, width: str | None, precision: int, scale: int) -> pa.DataType:
    import pyarrow as pa

    bits = int(width) if width else (128 if precision <= 38 else 256)
    factory = {32: pa.decimal32, 64: pa.decimal64, 128: pa.decimal128, 256: pa.decimal256}[bits]
    try:
        return factory(precision, scale)
    except (ValueError, pa.ArrowInvalid) as exc:
        raise ConfigError(f"type {text!r}: {exc}") from None


def check_names(columns: Iterable[object], what: str) -> tuple[str, ...]:
    """Validate a declaration's column names: non-empty strings, no repeats."""
    names: list[str] = []
    for name in columns:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{what}: column names must be non-empty strings, not {name!r}")
        if name in names:
            raise ConfigError(f"{what}: column {name!r} is named more than once")
        names.append(name)
    if not names:
        raise ConfigError(f"{what} needs at least one column")
    return tuple(names)


def missing_column(step: str, column: str, schema: pa.Schema) -> FatalError:
    """The error for a column a batch does not have, listing the ones it does."""
    available = ", ".join(schema.names) or "(none)"
    return FatalError(f"{step}: column {column!r} not found; available columns: {available}")


def _require(step: str, columns: Iterable[str], schema: pa.Schema) -> None:
    names = set(schema.names)
    for column in columns:
        if column not in names:
            raise missing_column(step, column, schema)


class Rename(Transformer):
    """Renames columns; every old name must exist (a silent no-op would hide typos)."""

    name = "rename"

    def __init__(self, mapping: Mapping[str, str]) -> None:
        if not isinstance(mapping, Mapping):
            raise ConfigError("rename expects a mapping of old name to new name")
        check_names(mapping.keys(), "rename")
        check_names(mapping.values(), "rename (new names)")
        self.mapping = dict(mapping)

    def describe(self) -> str:
        """E.g. ``rename(a→b, c→d)``."""
        pairs = ", ".join(f"{old}→{new}" for old, new in self.mapping.items())
        return f"{self.step_name}({pairs})"

    def transform(self, batch: pa.RecordBatch, ctx: RunContext) -> pa.RecordBatch:  # noqa: ARG002 - interface
        """Return the batch with the columns renamed (zero-copy)."""
        _require(self.step_name, self.mapping, batch.schema)
        names = [self.mapping.get(n, n) for n in batch.schema.names]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise FatalError(
                f"{self.step_name}: renaming would give two columns named {clash[0]!r}; "
                f"columns: {', '.join(batch.schema.names)}"
            )
        return batch.rename_columns(names)


class Select(Transformer):
    """Keeps only the named columns, in the order given."""

    name = "select"

    def __init__(self, *columns: str) -> None:
        self.columns = check_names(columns, "select")

    def describe(self) -> str:
        """E.g. ``select(id, name)``."""
        return f"{self.step_name}({', '.join(self.columns)})"

    def transform(self, batch: pa.RecordBatch, ctx: RunContext) -> pa.RecordBatch:  # noqa: ARG002 - interface
        """Return the selected columns (zero-copy)."""
        _require(self.step_name, self.columns, batch.schema)
        return batch.select(list(self.columns))


class Drop(Transformer):
    """Removes the named columns; a missing one is an error unless ``missing_ok``."""

    name = "drop"

    def __init__(self, *columns: str, missing_ok: bool = False) -> None:
        self.columns = check_names(columns, "drop")
        self.missing_ok = missing_ok

    def describe(self) -> str:
        """E.g. ``drop(tmp, debug)``."""
        return f"{self.step_name}({', '.join(self.columns)})"

    def transform(self, batch: pa.RecordBatch, ctx: RunContext) -> pa.RecordBatch:  # noqa: ARG002 - interface
        """Return the batch without the columns (zero-copy)."""
        present = set(batch.schema.names)
        if not self.missing_ok:
            _require(self.step_name, self.columns, batch.schema)
        return batch.drop_columns([c for c in self.columns if c in present])


class Cast(Transformer):
    """Converts columns to other Arrow types; ``safe`` refuses lossy conversions."""

    name = "cast"

    def __init__(self, mapping: Mapping[str, pa.DataType | str], *, safe: bool = True) -> None:
        if not isinstance(mapping, Mapping):
            raise ConfigError("cast expects a mapping of column name to type")
        check_names(mapping.keys(), "cast")
        targets = {}
        for column, spec in mapping.items():
            try:
                targets[column] = parse_type(spec)
            except ConfigError as exc:
                raise ConfigError(f"cast: column {column!r}: {exc}") from None
        self.targets: dict[str, pa.DataType] = targets
        self.safe = safe

    def describe(self) -> str:
        """E.g. ``cast(id: int64, at: timestamp[ms, tz=UTC])``."""
        pairs = ", ".join(f"{c}: {t}" for c, t in self.targets.items())
        return f"{self.step_name}({pairs})"

    def transform(self, batch: pa.RecordBatch, ctx: RunContext) -> pa.RecordBatch:  # noqa: ARG002 - interface
        """Return the batch with the columns converted."""
        import pyarrow as pa
        import pyarrow.compute as pc

        _require(self.step_name, self.targets, batch.schema)
        for column, target in self.targets.items():
            index = batch.schema.get_field_index(column)
            field = batch.schema.field(index)
            if field.type == target:
                continue
            try:
                values = pc.cast(batch.column(index), target, safe=self.safe)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                reason = (
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                )
                raise FatalError(
                    f"{self.step_name}: column {column!r} cannot be cast from {field.type} "
                    f"to {target}: {reason}"
                ) from None
            batch = batch.set_column(index, field.with_type(target), values)
        return batch


def rename(mapping: Mapping[str, str]) -> Rename:
    """Rename columns: ``rename({"old": "new"})``.

    ``mapping`` maps existing names to new ones; a name the batch lacks fails the run.
    """
    return Rename(mapping)


def select(*columns: str) -> Select:
    """Keep these columns, in this order: ``select("id", "name")``.

    ``columns`` are the names to keep; a name the batch lacks fails the run.
    """
    return Select(*columns)


def drop(*columns: str, missing_ok: bool = False) -> Drop:
    """Remove these columns: ``drop("tmp")``.

    A column of ``columns`` the batch lacks fails the run, unless ``missing_ok=True``.
    """
    return Drop(*columns, missing_ok=missing_ok)


def cast(mapping: Mapping[str, pa.DataType | str], *, safe: bool = True) -> Cast:
    """Convert columns: ``cast({"id": "int64", "at": "timestamp[ms, tz=UTC]"})``.

    ``mapping`` maps column names to types.  Types are pyarrow DataTypes or their names
    (``int64``, ``float64``, ``string``, ``bool``, ``date32``, ``timestamp[ms, tz=UTC]``,
    ``decimal128(18,4)``...), parsed here so a typo fails at declaration.  ``safe=False``
    allows lossy conversions (truncation, overflow) instead of failing the run.
    """
    return Cast(mapping, safe=safe)
