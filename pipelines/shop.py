"""Building blocks shared by the example pipelines (a helper module, not a pipeline).

Pipeline modules may import helpers that live beside them; only files named
``*_pipeline.py`` are discovered.
"""

from __future__ import annotations

from pathlib import Path

from runner import Pipeline, el
from runner.extract import clickhouse_query
from runner.load import clickhouse_upsert

DATA = Path(__file__).parent / "data"

# Revenue per (UTC) day and country for the days that end inside the run's window,
# computed inside ClickHouse from all of each day's events: the daily run at 00:15 covers
# [yesterday 00:15, today 00:15) and recomputes yesterday whole; a window that ends no day
# computes nothing.  The window bounds are bound parameters, never formatted into the SQL.
DAILY_REVENUE_SQL = """
SELECT
    toDate(ts)                              AS day,
    country,
    countIf(type = 'purchase')              AS purchases,
    round(sumIf(amount, type = 'purchase'), 2) AS revenue,
    uniqExactIf(customer_id, type = 'purchase') AS buyers,
    now64(3)                                AS computed_at
FROM events
WHERE ts >= toStartOfDay({window_start:DateTime64(3, 'UTC')})
  AND ts < toStartOfDay({window_end:DateTime64(3, 'UTC')})
GROUP BY day, country
ORDER BY day, country
"""


def daily_revenue(name: str, schedule: str | None = None) -> Pipeline:
    """ELT: aggregate events into daily_revenue for the days that end inside the window.

    Deduplication tokens are off: a re-run of a window must replace the figures when
    late events arrived, and the ReplacingMergeTree keeps the newest computed_at.
    """
    return el(
        name,
        schedule=schedule,
        description="Aggregate events into revenue per day and country (ClickHouse -> ClickHouse)",
        owner="analytics",
        tags=["elt", "mart"],
        extract=clickhouse_query(DAILY_REVENUE_SQL),
        load=clickhouse_upsert("daily_revenue", deduplicate=False),
    )
