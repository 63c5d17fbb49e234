"""Pipelines and migrations the HTTP suite runs: one per load mode, over a known source.

Every window yields ``ROWS`` rows (ids 0..ROWS-1, one second apart from the window start,
``v = id * version`` with ``--param version=N``) in batches of ``BATCH``, so a test knows
exactly what the target must hold after any number of runs.
"""

from __future__ import annotations

ROWS = 3000
BATCH = 500
WINDOW = ["--start", "2026-01-01", "--end", "2026-01-02"]

_SOURCE = """
import time
from datetime import timedelta

from runner import el
from runner.tools.load.clickhouse import clickhouse_append, clickhouse_upsert
from runner.tools.load.replace_window import clickhouse_replace_window


def extract(ctx):
    version = int(ctx.params.get("version", "1"))
    pause = float(ctx.params.get("pause", "0"))
    for b in range({rows} // {batch}):
        if pause:
            time.sleep(pause)
        yield [
            {{"id": i, "ts": ctx.window.start + timedelta(seconds=i), "v": i * version}}
            for i in range(b * {batch}, (b + 1) * {batch})
        ]


pipeline = el("{name}", schedule="0 0 * * *", extract=extract, load={loader})
"""
LOADERS = {
    "append": "clickhouse_append('t_append')",
    "upsert": "clickhouse_upsert('t_upsert')",
    "replace": "clickhouse_replace_window('t_replace', time_column='ts')",
}
ENGINES = {
    "append": "MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 1000",
    "upsert": "ReplacingMergeTree(v) ORDER BY id",
    "replace": "MergeTree PARTITION BY toDate(ts) ORDER BY id",
}


def load_pipelines() -> dict[str, str]:
    """``load_append``, ``load_upsert`` and ``load_replace`` pipeline modules."""
    return {
        f"load_{mode}_pipeline.py": _SOURCE.format(
            rows=ROWS, batch=BATCH, name=f"load_{mode}", loader=loader
        )
        for mode, loader in LOADERS.items()
    }


def load_migrations() -> dict[str, str]:
    """One migration creating the three targets."""
    statements = [
        f"CREATE TABLE {{{{database}}}}.t_{mode} "
        f"(id UInt64, ts DateTime64(3, 'UTC'), v UInt64) ENGINE = {engine}"
        for mode, engine in ENGINES.items()
    ]
    return {"0001_targets.sql": ";\n".join(statements) + ";\n"}


def expected_sum(version: int = 1) -> int:
    """``sum(v)`` of one window's rows."""
    return sum(i * version for i in range(ROWS))


def small_batches() -> dict[str, str]:
    """Environment for several inserts per run (one per batch, two in flight)."""
    return {"RUNNER_BATCH_ROWS": str(BATCH), "RUNNER_INSERT_ROWS": str(BATCH)}
