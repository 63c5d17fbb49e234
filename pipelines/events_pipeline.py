"""EL: gzip-compressed CSV event files into the MergeTree history table ``events``.

One file per UTC day (``events_YYYYMMDD.csv.gz``): a run opens only the files of its
window's days and keeps only the rows whose ``ts`` lies in its window, so an hourly run
adds that hour's events, and a re-run of a window adds nothing (deduplication tokens).
"""

import pyarrow as pa

from runner import el
from runner.extract import read_csv
from runner.load import clickhouse_append

from shop import DATA

pipeline = el(
    "events",
    schedule="0 * * * *",
    description="Load shop event files (CSV, gzip) into events (MergeTree)",
    owner="data-platform",
    tags=["el", "files"],
    timeout_seconds=1800,
    resources={"cpu_request": "250m", "memory_request": "512Mi", "memory_limit": "1Gi"},
    extract=read_csv(
        DATA / "events" / "events_{window_start:%Y%m%d}.csv.gz",
        time_column="ts",
        column_types={
            "event_id": pa.uint64(),
            "customer_id": pa.uint32(),
            "amount": pa.float64(),
        },
    ),
    load=clickhouse_append("events"),
    freshness=[{"table": "events", "column": "ts", "min_rows": 1}],
)
