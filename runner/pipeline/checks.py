"""Data checks a pipeline declares: run in ClickHouse on the window's rows after the load.

Declared with the pipeline (``checks=[{"kind": "not_null", ...}, ...]``) and validated
then, so a typo in a check fails ``runner list`` naming the check, not the run at 3 a.m.
A check looks at the rows of its table whose ``time_column`` lies in the run's window
(the same reading as the replace-window loader: :mod:`runner.tools.load.window_rows`),
or at the whole table when no time column is given.  A check that fails stops the run
before it is recorded as succeeded (``on_fail="fail"``, the default: the watermark does
not move) or is only logged and recorded (``on_fail="warn"``).  Running them is
:mod:`runner.services.data_checks`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from runner.errors import RunnerError

_TABLE = r"^([A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]*$"
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,205}$")]
TableName = Annotated[str, Field(pattern=_TABLE)]
OnFail = Literal["fail", "warn"]
#: Parameters a ``custom_sql`` check may use, with the types to write in the SQL.
CUSTOM_SQL_PARAMETERS = {
    "window_start": "DateTime64(6, 'UTC')",
    "window_end": "DateTime64(6, 'UTC')",
    "pipeline": "String",
    "run_id": "String",
}
_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\s*:")


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    on_fail: OnFail = "fail"

    @property
    def label(self) -> str:
        """The check's name: given, or made from its kind and what it looks at."""
        return self.name or self.default_name()

    def default_name(self) -> str:
        """The name a check gets when none is given."""
        raise NotImplementedError


class _TableCheck(_Check):
    table: TableName
    time_column: Identifier | None = None


class NotNull(_TableCheck):
    """``{"kind": "not_null", "table": ..., "column": ...}``: no row of the window has a NULL.

    - ``kind``: ``"not_null"``.
    - ``table``: ``name`` or ``database.name``.
    - ``column``: the column that must be set.
    - ``time_column``: the window's rows are those whose value lies in the run's window;
      omitted, the whole table is checked.
    - ``name``: how results and logs call the check (default ``not_null:<table>.<column>``).
    - ``on_fail``: ``"fail"`` (default) fails the run; ``"warn"`` only logs and records.
    """

    kind: Literal["not_null"]
    column: Identifier

    def default_name(self) -> str:
        return f"not_null:{self.table}.{self.column}"


class Unique(_TableCheck):
    """``{"kind": "unique", "table": ..., "columns": [...]}``: no key twice in the window.

    - ``kind``: ``"unique"``.
    - ``columns``: the key (one or more columns); a row count per duplicated key is
      reported.  ReplacingMergeTree-family tables are read with ``FINAL``, so versions
      not merged yet do not count as duplicates.
    - ``table``, ``time_column``, ``name``, ``on_fail``: as for :class:`NotNull`.
    """

    kind: Literal["unique"]
    columns: Annotated[tuple[Identifier, ...], Field(min_length=1)]

    def default_name(self) -> str:
        return f"unique:{self.table}({','.join(self.columns)})"


class AcceptedValues(_TableCheck):
    """``{"kind": "accepted_values", "table": ..., "column": ..., "values": [...]}``.

    - ``kind``: ``"accepted_values"``.
    - ``column``: compared as text (``toString``), so ``[1, 2]`` and ``["1", "2"]`` mean
      the same and Enum columns compare by name; NULLs are left to ``not_null``.
    - ``values``: the values allowed (at least one).
    - ``table``, ``time_column``, ``name``, ``on_fail``: as for :class:`NotNull`.
    """

    kind: Literal["accepted_values"]
    column: Identifier
    values: Annotated[tuple[str | int | float | bool, ...], Field(min_length=1)]

    def default_name(self) -> str:
        return f"accepted_values:{self.table}.{self.column}"

    @property
    def texts(self) -> list[str]:
        """The values as ``toString`` writes them (booleans as ``true``/``false``)."""
        return [str(v).lower() if isinstance(v, bool) else str(v) for v in self.values]


class RowCountBetween(_TableCheck):
    """``{"kind": "row_count_between", "table": ..., "min": 1, "max": ...}``.

    - ``kind``: ``"row_count_between"``.
    - ``min``, ``max``: the window's rows must number at least ``min`` and at most
      ``max`` (either may be left out, not both).
    - ``table``, ``time_column``, ``name``, ``on_fail``: as for :class:`NotNull`.
    """

    kind: Literal["row_count_between"]
    min: Annotated[int, Field(ge=0, strict=True)] | None = None
    max: Annotated[int, Field(ge=0, strict=True)] | None = None

    def default_name(self) -> str:
        return f"row_count_between:{self.table}"

    @model_validator(mode="after")
    def _bounds(self) -> RowCountBetween:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class CustomSql(_Check):
    """``{"kind": "custom_sql", "name": ..., "sql": "SELECT ..."}``: a query for bad rows.

    - ``kind``: ``"custom_sql"``.
    - ``sql``: one read-only statement (``SELECT`` or ``WITH``) returning the rows that
      are wrong; the check fails when it returns any.  It may use the parameters
      ``{window_start:DateTime64(6, 'UTC')}``, ``{window_end:DateTime64(6, 'UTC')}``,
      ``{pipeline:String}`` and ``{run_id:String}``.  It runs with ClickHouse's
      ``readonly = 2`` on a connection of its own, like ``runner query``.
    - ``name``: required, names the check in results and logs.
    - ``on_fail``: as for :class:`NotNull`.
    """

    kind: Literal["custom_sql"]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    sql: Annotated[str, Field(min_length=1)]

    def default_name(self) -> str:
        return self.name

    @field_validator("sql")
    @classmethod
    def _read_only(cls, value: str) -> str:
        from runner.warehouse.read_only import check_read_only, parse_statement

        try:
            statement = parse_statement(value)
            check_read_only(statement, refused_by="a custom_sql check")
        except RunnerError as exc:
            raise ValueError(str(exc)) from None
        if statement.keyword not in {"SELECT", "WITH"}:
            raise ValueError(f"{statement.keyword} returns no rows to count: write a SELECT")
        unknown = sorted(set(_PARAMETER.findall(value)) - set(CUSTOM_SQL_PARAMETERS))
        if unknown:
            raise ValueError(
                f"unknown parameter {unknown[0]!r}: use {', '.join(CUSTOM_SQL_PARAMETERS)}"
            )
        return statement.sql

    @property
    def parameters(self) -> list[str]:
        """The parameters the SQL uses."""
        return sorted(set(_PARAMETER.findall(self.sql)))


DataCheck = Annotated[
    NotNull | Unique | AcceptedValues | RowCountBetween | CustomSql, Field(discriminator="kind")
]
