-- {{database}} and {{on_cluster}} are filled in by `runner migrate`, so the same file
-- serves a laptop and a cluster.

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
