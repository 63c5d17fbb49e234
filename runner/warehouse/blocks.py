"""Slicing Arrow record batches to a row bound, without copying.

The warehouse re-slices the engine's result blocks (``max_block_size`` is only a hint)
and the run loop bounds what steps yield; both use :func:`split`, which lives here, below
both of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["split"]


def split(batch: pa.RecordBatch, max_rows: int) -> Iterator[pa.RecordBatch]:
    """Yield zero-copy slices of ``batch`` with at most ``max_rows`` rows each."""
    if batch.num_rows <= max_rows:
        if batch.num_rows:
            yield batch
        return
    for offset in range(0, batch.num_rows, max_rows):
        yield batch.slice(offset, max_rows)
