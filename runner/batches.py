"""Turning whatever a step yields into bounded Arrow record batches.

Steps may yield record batches, tables, lists of row dicts or single row dicts; the run
loop only ever sees ``pa.RecordBatch`` objects of at most ``max_rows`` rows, so memory
stays bounded by the batch size, not by the size of the source.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from runner.errors import FatalError

if TYPE_CHECKING:
    import pyarrow as pa

Row: TypeAlias = Mapping[str, Any]
BatchLike: TypeAlias = "pa.RecordBatch | pa.Table | list[Row] | Row"


def split(batch: pa.RecordBatch, max_rows: int) -> Iterator[pa.RecordBatch]:
    """Yield zero-copy slices of ``batch`` with at most ``max_rows`` rows each."""
    if batch.num_rows <= max_rows:
        if batch.num_rows:
            yield batch
        return
    for offset in range(0, batch.num_rows, max_rows):
        yield batch.slice(offset, max_rows)


def from_rows(rows: list[Row], schema: pa.Schema | None = None) -> pa.RecordBatch:
    """Build one batch from row dicts, with a clear error for rows Arrow cannot type.

    Without a schema the columns are every key of every row, in order of first
    appearance: ``from_pylist`` alone takes the first row's keys and silently drops keys
    that appear only in later rows.
    """
    import pyarrow as pa

    try:
        if schema is None and rows:
            names = list(rows[0])
            if not set().union(*rows).issubset(names):  # C loops; the ordered scan if needed
                names = list(dict.fromkeys(key for row in rows for key in row))
                return pa.RecordBatch.from_pydict({n: [r.get(n) for r in rows] for n in names})
        return pa.RecordBatch.from_pylist(rows, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise FatalError(f"rows cannot be converted to Arrow: {exc}") from None


def to_batches(items: Iterable[Any], max_rows: int) -> Iterator[pa.RecordBatch]:
    """Normalise a stream of batch-likes into bounded record batches.

    Single row dicts are gathered into batches of ``max_rows``; anything else is flushed
    in order so that rows keep their order.
    """
    import pyarrow as pa

    pending: list[Row] = []
    for item in items:
        if isinstance(item, Mapping):
            pending.append(item)
            if len(pending) >= max_rows:
                yield from_rows(pending)
                pending = []
            continue
        if pending:
            yield from_rows(pending)
            pending = []
        if isinstance(item, pa.RecordBatch):
            yield from split(item, max_rows)
        elif isinstance(item, pa.Table):
            for chunk in item.to_batches(max_chunksize=max_rows):
                yield from split(chunk, max_rows)
        elif isinstance(item, list):
            for offset in range(0, len(item), max_rows):
                batch = from_rows(item[offset : offset + max_rows])
                if batch.num_rows:
                    yield batch
        else:
            raise FatalError(
                "a step yielded a "
                f"{type(item).__name__}; expected a pyarrow RecordBatch or Table, "
                "a list of row dicts, or a row dict"
            )
    if pending:
        yield from_rows(pending)


def as_batch(item: Any) -> pa.RecordBatch | None:
    """Coerce a transform's return value into one batch (None or empty means: drop)."""
    import pyarrow as pa

    if item is None:
        return None
    if isinstance(item, pa.RecordBatch):
        return item
    if isinstance(item, pa.Table):
        return item.combine_chunks().to_batches()[0] if item.num_rows else None
    if isinstance(item, list):
        return from_rows(item) if item else None
    raise FatalError(
        f"a transform returned a {type(item).__name__}; expected a RecordBatch, Table, "
        "list of row dicts or None"
    )
