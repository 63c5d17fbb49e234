"""What fitting batches to the table costs: ``conform`` on 1M-row batches against the insert.

The ClickHouse loaders check every batch against the target's column types before
inserting it (runner/tools/load/_conform.py).  This measures that check on 1M-row batches
of the benchmark data, next to the insert of the same batch into the same table on the
embedded engine (the reference, measured in the same process):

* ``exact``   the Parquet benchmark batch: its Arrow types already are the table's, so
              the check is a look at each column's type and null count;
* ``csv``     the same rows as pyarrow's CSV reader types them (int64 ids into UInt64,
              seconds or milliseconds into DateTime64(3));
* ``narrow``  every column cast: int64 into UInt32/Int16/UInt8, float64 into Float32
              and Decimal(12, 2), dates and timestamps range-checked, text into an Enum,
              and a Nullable column with nulls.

Each figure is the median of ``--repeat`` runs.  Usage:
python benchmarks/conform_cost.py [--rows N] [--repeat N] [--out FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import data  # beside this script: python puts its folder on sys.path

if TYPE_CHECKING:
    from collections.abc import Callable

    import pyarrow as pa

NARROW_COLUMNS = """
    id UInt32, small Int16, flag UInt8, ratio Float32, price Decimal(12, 2),
    day Date, seen DateTime('UTC'), kind Enum8('a' = 1, 'b' = 2, 'c' = 3),
    note Nullable(String)
"""


def narrow_batch(rows: int) -> pa.RecordBatch:
    """Values that fit the narrow table, in the wide types sources usually give."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(data.SEED)
    ids = np.arange(rows, dtype=np.int64)
    return pa.record_batch(
        {
            "id": pa.array(ids),
            "small": pa.array(rng.integers(-30_000, 30_000, rows)),
            "flag": pa.array(rng.integers(0, 2, rows)),
            "ratio": pa.array(rng.random(rows)),
            "price": pa.array(np.round(rng.gamma(2.0, 40.0, rows), 2)),
            "day": pa.array((ids % 20_000).astype(np.int32), pa.date32()),
            "seen": pa.array(1_767_225_600_000 + ids * 37, pa.timestamp("ms", "UTC")),
            "kind": pa.array(np.asarray(["a", "b", "c"], dtype=object)[ids % 3], pa.string()),
            "note": pa.array(["x"] * rows, pa.string(), mask=rng.random(rows) < 0.3),
        }
    )


def median_seconds(action: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(rows: int, repeat: int) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from runner.settings import Settings
    from runner.tools.load._conform import conform, read_columns
    from runner.warehouse.client import Warehouse

    workdir = Path(tempfile.mkdtemp(prefix="conform-bench-"))
    warehouse = Warehouse.connect(
        Settings(warehouse_url=f"chdb://{workdir / 'chdb'}", database="bench"),
        ensure_database=True,
    )
    exact = pa.Table.from_batches(data.chunk(0, rows).to_batches()).combine_chunks()
    exact_batch = exact.to_batches()[0]
    text = io.BytesIO()
    pcsv.write_csv(exact, text)
    as_csv = pcsv.read_csv(io.BytesIO(text.getvalue())).combine_chunks().to_batches()[0]
    cases = {
        "exact": ("wide", data.TABLE_COLUMNS, exact_batch),
        "csv": ("wide", data.TABLE_COLUMNS, as_csv),
        "narrow": ("narrow", NARROW_COLUMNS, narrow_batch(rows)),
    }
    results = []
    for case, (table, columns, batch) in cases.items():
        warehouse.command(f"DROP TABLE IF EXISTS {table}")
        warehouse.command(f"CREATE TABLE {table} ({columns}) ENGINE = MergeTree ORDER BY id")
        types = read_columns(warehouse, "bench", table)
        fitted = conform(batch, types, target=table)
        if fitted.rejected:
            raise SystemExit(f"{case}: the benchmark data does not fit: {fitted.rejected[:3]}")
        check = median_seconds(lambda b=batch, t=types: conform(b, t, target="bench"), repeat)
        insert = median_seconds(
            lambda f=fitted.batch, t=table: warehouse.insert_arrow(t, f), max(1, repeat // 2)
        )
        results.append(
            {
                "case": case,
                "rows": batch.num_rows,
                "conform_ms": round(check * 1000, 1),
                "insert_ms": round(insert * 1000, 1),
                "ratio": round(check / insert, 3),
            }
        )
    warehouse.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = measure(args.rows, args.repeat)
    lines = [
        "| batch | rows | conform | insert of the same batch | conform / insert |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['case']} | {r['rows']:,} | {r['conform_ms']} ms | {r['insert_ms']} ms | "
        f"{r['ratio']:.3f} |"
        for r in results
    ]
    print("\n".join(lines))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
