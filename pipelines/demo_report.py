"""Print what the example pipelines loaded (used by `make demo`)."""

from __future__ import annotations

import sys

from runner.errors import RunnerError
from runner.settings import load_settings
from runner.warehouse.client import Warehouse

QUERIES = {
    "events (MergeTree, rows)": "SELECT count() FROM events",
    "customers (ReplacingMergeTree FINAL, rows)": "SELECT count() FROM customers FINAL",
    "quarantined customer rows": ("SELECT count() FROM _quarantine WHERE pipeline = 'customers'"),
    "daily_revenue (FINAL, day x country rows)": "SELECT count() FROM daily_revenue FINAL",
    "total revenue 2026-01-01..07": "SELECT round(sum(revenue), 2) FROM daily_revenue FINAL",
}


def main() -> None:
    warehouse = Warehouse.connect(load_settings())
    try:
        print(f"\nwarehouse {warehouse.target.describe()}, database {warehouse.database}")
        for label, sql in QUERIES.items():
            print(f"  {label:<45} {warehouse.query_rows(sql)[0][0]}")
        print("  first quarantine reasons:")
        for (reason,) in warehouse.query_rows(
            "SELECT reason FROM _quarantine WHERE pipeline = 'customers' ORDER BY reason LIMIT 5"
        ):
            print(f"    - {reason}")
    finally:
        warehouse.close()


if __name__ == "__main__":
    try:
        main()
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(int(exc.exit_code))
