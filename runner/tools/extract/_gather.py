"""Joining small parsed blocks, across files, into full batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from runner.batches import split

if TYPE_CHECKING:
    import pyarrow as pa


__all__ = ["Gather"]


class Gather:
    """Joins the readers' blocks, across files, into batches of ``rows`` rows, in order.

    CSV and JSON readers cut by bytes (``block_size``), so a 4 MiB block may hold a few
    thousand rows; every batch becomes one insert, and many small inserts cost the
    warehouse far more (parts, merges) than a few full ones.  Holds fewer than ``rows``
    rows plus one block.
    """

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.pending: list[pa.RecordBatch] = []
        self.count = 0

    def add(self, batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        """Take ``batch``; yield the full batches it completes."""
        if not batch.num_rows:
            return
        self.pending.append(batch)
        self.count += batch.num_rows
        if self.count < self.rows:
            return
        joined = self._join()
        full = joined.num_rows - joined.num_rows % self.rows
        yield from split(joined.slice(0, full), self.rows)
        rest = joined.slice(full)
        self.pending = [rest] if rest.num_rows else []
        self.count = rest.num_rows

    def flush(self) -> Iterator[pa.RecordBatch]:
        """Yield what is left (fewer than ``rows`` rows)."""
        if self.count:
            yield self._join()
        self.pending, self.count = [], 0

    def _join(self) -> pa.RecordBatch:
        import pyarrow as pa

        if len(self.pending) == 1:
            return self.pending[0]
        return pa.Table.from_batches(self.pending).combine_chunks().to_batches()[0]
