-- {{database}} and {{on_cluster}} are filled in by `runner migrate`, so the same file
-- serves a laptop and a cluster.

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
