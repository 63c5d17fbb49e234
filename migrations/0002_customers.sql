-- {{database}} and {{on_cluster}} are filled in by `runner migrate`, so the same file
-- serves a laptop and a cluster.

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
