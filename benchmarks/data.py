"""Synthetic benchmark data: one table shape written once as Parquet and as plain CSV.

Eleven columns cover what slows loaders down: sequential ids, millisecond timestamps, low-
and high-cardinality strings, floats and nullable columns (ints, floats, strings).  Rows
are generated in chunks from a fixed seed, so the files are the same on every machine and
memory stays bounded while writing.  Files are cached by row count and reused.

Usage: python benchmarks/data.py [--rows N] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

CHUNK_ROWS = 1_000_000
#: Parquet row groups of this many rows (pyarrow's default size: what files in the wild have).
ROW_GROUP_ROWS = 1 << 20
SEED = 20260101
COUNTRIES = ["DE", "FR", "US", "GB", "NL", "PL", "ES", "IT", "SE", "BR", "IN", "JP"]
STATUSES = ["ok", "pending", "refunded", "failed", "cancelled"]
REFERRERS = ["google", "newsletter", "partner", "direct", "ads"]
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z

#: The target table (the same for the engine's own ingestion and for the framework).
TABLE_COLUMNS = """
    id UInt64,
    ts DateTime64(3, 'UTC'),
    user_id Int64,
    country LowCardinality(String),
    status LowCardinality(String),
    session String,
    url String,
    amount Float64,
    discount Nullable(Float64),
    referrer Nullable(String),
    parent_id Nullable(Int64)
"""


def default_cache_dir() -> Path:
    """Outside the repository: the files are large and reproducible."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pipeline-runner-bench"


def table_ddl(table: str) -> str:
    """The benchmark table: a plain MergeTree sorted by id."""
    return f"CREATE TABLE IF NOT EXISTS {table} ({TABLE_COLUMNS}) ENGINE = MergeTree ORDER BY id"


def chunk(offset: int, rows: int) -> pa.Table:
    """Rows ``offset`` .. ``offset + rows`` of the data set (deterministic per offset)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng([SEED, offset])
    ids = np.arange(offset, offset + rows, dtype=np.uint64)
    ts = START_MS + ids.astype(np.int64) * 37 + rng.integers(0, 37, rows)
    user = rng.integers(0, 5_000_000, rows)
    session = pc.binary_join_element_wise(
        "s-", pc.cast(pa.array(rng.integers(0, 1 << 62, rows)), pa.string()), ""
    )
    url = pc.binary_join_element_wise(
        "https://shop.example.com/products/",
        pc.cast(pa.array(rng.integers(0, 2_000_000, rows)), pa.string()),
        "/reviews?page=",
        pc.cast(pa.array(rng.integers(1, 50, rows)), pa.string()),
        "",
    )

    def pick(values: list[str], nulls: float = 0.0) -> pa.Array:
        index = rng.integers(0, len(values), rows)
        mask = rng.random(rows) < nulls if nulls else None
        return pa.array(np.asarray(values, dtype=object)[index], pa.string(), mask=mask)

    discount_mask = rng.random(rows) < 0.3
    parent_mask = rng.random(rows) < 0.6
    return pa.table(
        {
            "id": pa.array(ids, pa.uint64()),
            "ts": pa.array(ts, pa.int64()).cast(pa.timestamp("ms", "UTC")),
            "user_id": pa.array(user, pa.int64()),
            "country": pick(COUNTRIES),
            "status": pick(STATUSES),
            "session": session,
            "url": url,
            "amount": pa.array(np.round(rng.gamma(2.0, 40.0, rows), 2), pa.float64()),
            "discount": pa.array(
                np.round(rng.random(rows) * 0.5, 3), pa.float64(), mask=discount_mask
            ),
            "referrer": pick(REFERRERS, nulls=0.5),
            "parent_id": pa.array(rng.integers(0, 1 << 40, rows), pa.int64(), mask=parent_mask),
        }
    )


def paths(cache_dir: Path, rows: int) -> dict[str, Path]:
    """Where the Parquet and CSV files of ``rows`` rows live."""
    folder = cache_dir / f"rows-{rows}"
    return {"parquet": folder / "data.parquet", "csv": folder / "data.csv"}


def ensure(
    cache_dir: Path, rows: int, formats: tuple[str, ...] = ("parquet", "csv")
) -> dict[str, Path]:
    """Write the files of ``rows`` rows unless they are already cached; return their paths."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    files = {k: p for k, p in paths(cache_dir, rows).items() if k in formats}
    missing = {k: p for k, p in files.items() if not p.exists()}
    if not missing:
        return files
    started = time.perf_counter()
    partial = {k: p.with_suffix(p.suffix + ".partial") for k, p in missing.items()}
    next(iter(partial.values())).parent.mkdir(parents=True, exist_ok=True)
    first = chunk(0, min(rows, CHUNK_ROWS))
    schema = first.schema
    csv_schema = schema.set(1, pa.field("ts", pa.timestamp("ms")))
    with ExitStack() as stack:
        parquet = (
            stack.enter_context(pq.ParquetWriter(partial["parquet"], schema, compression="snappy"))
            if "parquet" in partial
            else None
        )
        csv = (
            stack.enter_context(pcsv.CSVWriter(partial["csv"], csv_schema))
            if "csv" in partial
            else None
        )
        offset = 0
        while offset < rows:
            part = first if offset == 0 else chunk(offset, min(rows - offset, CHUNK_ROWS))
            if parquet is not None:
                parquet.write_table(part, row_group_size=ROW_GROUP_ROWS)
            if csv is not None:
                # CSV exports rarely carry a zone suffix; the engine's basic parser wants none
                csv.write_table(part.set_column(1, "ts", part["ts"].cast(pa.timestamp("ms"))))
            offset += part.num_rows
    for key, path in partial.items():
        path.replace(files[key])
    took = time.perf_counter() - started
    print(f"generated {rows:,} rows ({', '.join(partial)}) in {took:.1f} s", file=sys.stderr)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    args = parser.parse_args()
    for fmt, path in ensure(args.cache_dir, args.rows).items():
        print(f"{fmt:<8} {path}  {path.stat().st_size / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
