"""EL: gzip-compressed CSV event files into the MergeTree history table ``events``."""

import pyarrow as pa

from runner import clickhouse_append, el
from runner.tools.extract.files import read_csv

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
        DATA / "events" / "*.csv.gz",
        column_types={
            "event_id": pa.uint64(),
            "customer_id": pa.uint32(),
            "amount": pa.float64(),
        },
    ),
    load=clickhouse_append("events"),
    freshness=[{"table": "events", "column": "ts", "min_rows": 1}],
)
