-- Tables of the example pipelines. {{database}} and {{on_cluster}} are filled in by
-- `runner migrate` so the same file serves a laptop and a cluster.

-- History of shop events (append-only). The deduplication window makes retried
-- inserts with the same insert_deduplication_token harmless on a single node.
CREATE TABLE IF NOT EXISTS {{database}}.events {{on_cluster}}
(
    event_id    UInt64,
    ts          DateTime64(3, 'UTC'),
    customer_id UInt32,
    type        LowCardinality(String),
    amount      Nullable(Float64),
    country     LowCardinality(String)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (ts, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Latest state of each customer: the row with the greatest updated_at wins (read with FINAL).
CREATE TABLE IF NOT EXISTS {{database}}.customers {{on_cluster}}
(
    customer_id UInt32,
    email       String,
    name        String,
    country     LowCardinality(String),
    signup_date Date,
    updated_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY customer_id
SETTINGS non_replicated_deduplication_window = 10000;

-- Revenue per day and country, recomputed from events for each window (ELT).
CREATE TABLE IF NOT EXISTS {{database}}.daily_revenue {{on_cluster}}
(
    day          Date,
    country      LowCardinality(String),
    purchases    UInt64,
    revenue      Float64,
    buyers       UInt64,
    computed_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (day, country);
