"""ELT: revenue per day and country, aggregated inside ClickHouse from ``events``."""

from shop import daily_revenue

pipeline = daily_revenue("daily_revenue", schedule="15 0 * * *")
