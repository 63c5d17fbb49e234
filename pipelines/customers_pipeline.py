"""ETL: customer records (JSON lines) validated, cleaned and upserted into a ReplacingMergeTree.

A run takes the records updated inside its window (``updated_at``).  Rows that fail
validation, or that the reader cannot parse, go to the ``_quarantine`` table with the
reason; the run fails only if more than 1% of the rows are bad.
"""

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field, PositiveInt

from runner import etl
from runner.extract import read_jsonl
from runner.load import clickhouse_upsert
from runner.transform import dedupe, map_rows, validate

from shop import DATA


class Customer(BaseModel):
    customer_id: PositiveInt
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[a-z]+$")
    name: str
    country: str = Field(pattern=r"^[A-Z]{2}$")
    signup_date: date
    updated_at: datetime


@map_rows
def normalise(row: dict[str, Any]) -> dict[str, Any]:
    row["email"] = row["email"].strip().lower()
    row["name"] = " ".join(row["name"].split())
    return row


pipeline = etl(
    "customers",
    schedule="*/30 * * * *",
    description="Validate customer records and upsert the latest state (ReplacingMergeTree)",
    owner="crm-team",
    tags=["etl", "quarantine"],
    extract=read_jsonl(DATA / "customers.jsonl.gz", time_column="updated_at"),
    transform=[
        validate(Customer, on_error="skip", max_invalid=0.01),
        normalise,
        dedupe("customer_id", "updated_at"),
    ],
    load=clickhouse_upsert("customers"),
)
