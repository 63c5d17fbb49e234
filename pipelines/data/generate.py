"""Regenerate the bundled sample data (deterministic): python pipelines/data/generate.py."""

from __future__ import annotations

import csv
import gzip
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).parent
START = datetime(2026, 1, 1, tzinfo=UTC)
COUNTRIES = ["DE", "FR", "US", "GB", "NL", "PL", "ES", "IT", "SE", "JP"]
EVENT_TYPES = ["view", "view", "view", "cart", "purchase"]


def customers(rng: random.Random) -> None:
    rows = []
    for cid in range(1, 2001):
        signup = START - timedelta(days=rng.randint(1, 900))
        rows.append(
            {
                "customer_id": cid,
                "email": f"user{cid}@example.{rng.choice(['com', 'org', 'net'])}",
                "name": f"Customer {cid}",
                "country": rng.choice(COUNTRIES),
                "signup_date": signup.date().isoformat(),
                "updated_at": (START + timedelta(minutes=rng.randint(0, 7 * 1440))).isoformat(),
            }
        )
    # Later versions of some customers (the upsert keeps the newest).
    for cid in rng.sample(range(1, 2001), 150):
        newer = dict(rows[cid - 1])
        newer["country"] = rng.choice(COUNTRIES)
        newer["updated_at"] = (START + timedelta(days=8, minutes=cid)).isoformat()
        rows.append(newer)
    # Rows that must end up in quarantine.
    bad = [
        {
            "customer_id": -5,
            "email": "neg@example.com",
            "name": "Negative",
            "country": "DE",
            "signup_date": "2025-01-01",
            "updated_at": START.isoformat(),
        },
        {
            "customer_id": 3001,
            "email": "not-an-email",
            "name": "Bad Mail",
            "country": "FR",
            "signup_date": "2025-02-01",
            "updated_at": START.isoformat(),
        },
        {
            "customer_id": 3002,
            "email": "x@example.com",
            "name": "Bad Country",
            "country": "Germany",
            "signup_date": "2025-03-01",
            "updated_at": START.isoformat(),
        },
        {
            "customer_id": 3003,
            "email": "y@example.com",
            "name": "Bad Date",
            "country": "US",
            "signup_date": "2025-13-45",
            "updated_at": START.isoformat(),
        },
        {
            "email": "noid@example.com",
            "name": "No Id",
            "country": "GB",
            "signup_date": "2025-04-01",
            "updated_at": START.isoformat(),
        },
    ]
    rows.extend(bad)
    rng.shuffle(rows)
    with gzip.open(HERE / "customers.jsonl.gz", "wt", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")


def events(rng: random.Random) -> None:
    folder = HERE / "events"
    folder.mkdir(exist_ok=True)
    event_id = 0
    for day in range(7):
        path = folder / f"events_{(START + timedelta(days=day)):%Y%m%d}.csv.gz"
        with gzip.open(path, "wt", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["event_id", "ts", "customer_id", "type", "amount", "country"])
            for _ in range(4000):
                event_id += 1
                ts = START + timedelta(days=day, seconds=rng.randint(0, 86399))
                kind = rng.choice(EVENT_TYPES)
                amount = f"{rng.uniform(5, 500):.2f}" if kind == "purchase" else ""
                writer.writerow(
                    [
                        event_id,
                        ts.strftime("%Y-%m-%d %H:%M:%S"),
                        rng.randint(1, 2000),
                        kind,
                        amount,
                        rng.choice(COUNTRIES),
                    ]
                )


if __name__ == "__main__":
    generator = random.Random(20260101)
    customers(generator)
    events(generator)
