"""A ClickHouse query as a source: the ELT half that reads from the warehouse itself."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError
from runner.pipeline.steps import Extractor

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.context import RunContext

__all__ = ["ClickHouseQuery", "clickhouse_query"]


WINDOW_PARAMETERS = ("window_start", "window_end")


class ClickHouseQuery(Extractor):
    """Streams the result of a SELECT as Arrow batches.

    The run window is bound as ``{window_start:DateTime64(3, 'UTC')}`` and
    ``{window_end:DateTime64(3, 'UTC')}``, so a query selects exactly its window; other
    values go in ``parameters`` and are bound the same way, never formatted into the SQL.
    Unqualified table names refer to the pipelines' database.
    """

    name = "clickhouse_query"

    def __init__(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        if not sql.strip():
            raise ConfigError("clickhouse_query: the SQL is empty")
        clash = set(parameters or {}) & set(WINDOW_PARAMETERS)
        if clash:
            raise ConfigError(
                f"clickhouse_query: parameters {sorted(clash)} are reserved for the run window"
            )
        self.sql = sql
        self.parameters = dict(parameters or {})

    def describe(self) -> str:
        """The query's first line."""
        return f"clickhouse_query({self.sql.strip().splitlines()[0][:60]})"

    def extract(self, ctx: RunContext) -> Iterator[pa.RecordBatch]:
        """Stream the query's result."""
        params = {
            **self.parameters,
            "window_start": ctx.window.start,
            "window_end": ctx.window.end,
        }
        with ctx.warehouse.stream_arrow(self.sql, params, max_rows=ctx.batch_rows) as batches:
            yield from batches


def clickhouse_query(sql: str, parameters: Mapping[str, Any] | None = None) -> ClickHouseQuery:
    """A source that streams ``sql``'s result, with the run window bound as parameters.

    ``sql`` may use ``{window_start:DateTime64(3, 'UTC')}`` and ``{window_end:...}``;
    ``parameters`` are bound beside them the same way (``{name:Type}`` in the SQL), never
    formatted into the text.
    """
    return ClickHouseQuery(sql, parameters)
