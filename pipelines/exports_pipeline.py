"""Composition: refresh the revenue mart when the window covers whole days, then export
the marts to files in parallel.

sequential
├── conditional refresh_revenue   (only for windows of a day or more)
│   └── el revenue_refresh        ClickHouse -> ClickHouse
└── parallel write_files          (both exports at once)
    ├── el export_revenue         daily_revenue -> Parquet
    └── el export_customers       customers FINAL -> JSON lines
"""

import os
from datetime import timedelta

from runner import RunContext, conditional, el, parallel, sequential
from runner.extract import clickhouse_query
from runner.load import write_jsonl, write_parquet

from shop import daily_revenue

# Relative to the working directory. In the image /app is read-only: point EXPORTS_DIR at a
# writable volume (or /tmp) in the pod's environment.
EXPORT_DIR = os.environ.get("EXPORTS_DIR", "exports") + "/{pipeline}/{window_start}"


def covers_whole_days(ctx: RunContext) -> bool:
    return ctx.window.end - ctx.window.start >= timedelta(days=1)


pipeline = sequential(
    "exports",
    schedule="30 1 * * *",
    description="Refresh the revenue mart, then export marts to Parquet and JSON lines",
    owner="analytics",
    tags=["composition"],
    steps=[
        conditional(
            "refresh_revenue",
            when=covers_whole_days,
            then=daily_revenue("revenue_refresh"),
        ),
        parallel(
            "write_files",
            max_workers=2,
            on_failure="continue",
            steps=[
                el(
                    "export_revenue",
                    extract=clickhouse_query(
                        "SELECT day, country, purchases, revenue, buyers FROM daily_revenue FINAL"
                        " WHERE day >= toDate({window_start:DateTime64(3, 'UTC')})"
                        " AND day < toDate({window_end:DateTime64(3, 'UTC')})"
                        " ORDER BY day, country"
                    ),
                    load=write_parquet(EXPORT_DIR + "/daily_revenue.parquet"),
                ),
                el(
                    "export_customers",
                    extract=clickhouse_query(
                        "SELECT customer_id, email, country, updated_at FROM customers FINAL"
                        " ORDER BY customer_id"
                    ),
                    load=write_jsonl(EXPORT_DIR + "/customers.jsonl.gz"),
                ),
            ],
        ),
    ],
)
