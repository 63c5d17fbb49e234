"""Per-pipeline key-value state (watermarks, cursors), stored in ClickHouse.

Steps read committed state and stage changes through ``ctx.state``; the run service
commits staged changes only after the whole run succeeded, so a failed or killed run
never moves a watermark past data that was not loaded.  Values are JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from runner.warehouse.sql import on_cluster, qualified_table, replacing_engine

if TYPE_CHECKING:
    from runner.warehouse.client import Warehouse

TABLE = "state"
WINDOW_END_KEY = "_window_end"  # the end of the last successful window, kept for every pipeline


def state_ddl(state_database: str, cluster: str | None) -> str:
    """The state table: the newest row per (pipeline, key) wins; deleted rows hide a key."""
    table = qualified_table(f"{state_database}.{TABLE}", state_database)
    engine = replacing_engine(state_database, TABLE, cluster, "updated_at")
    return (
        f"CREATE TABLE IF NOT EXISTS {table}{on_cluster(cluster)} ("
        " pipeline LowCardinality(String), key String, value String, deleted UInt8,"
        " run_id String, updated_at DateTime64(6, 'UTC')"
        f") ENGINE = {engine} ORDER BY (pipeline, key)"
    )


class StateStore:
    """Committed state of all pipelines."""

    def __init__(self, warehouse: Warehouse, state_database: str) -> None:
        self.warehouse = warehouse
        self.table = qualified_table(f"{state_database}.{TABLE}", state_database)

    def load(self, pipeline: str) -> dict[str, Any]:
        """Every key of ``pipeline`` with its JSON-decoded value."""
        rows = self.warehouse.query_rows(
            f"SELECT key, argMax(value, updated_at), argMax(deleted, updated_at) "  # nosec B608
            f"FROM {self.table} WHERE pipeline = {{p:String}} GROUP BY key ORDER BY key",
            {"p": pipeline},
        )
        return {str(k): json.loads(v) for k, v, deleted in rows if not deleted}

    def save(self, pipeline: str, values: Mapping[str, Any], run_id: str) -> None:
        """Commit new values for some keys."""
        self._write(pipeline, {k: json.dumps(v, default=str) for k, v in values.items()}, run_id, 0)

    def reset(
        self, pipeline: str, keys: list[str] | None = None, run_id: str = "operator"
    ) -> list[str]:
        """Delete some keys (or all) of ``pipeline``; returns the deleted keys."""
        existing = self.load(pipeline)
        doomed = [k for k in (keys if keys is not None else list(existing)) if k in existing]
        self._write(pipeline, dict.fromkeys(doomed, "null"), run_id, 1)
        return doomed

    def _write(self, pipeline: str, values: Mapping[str, str], run_id: str, deleted: int) -> None:
        if not values:
            return
        now = datetime.now(UTC)
        for key, value in values.items():
            self.warehouse.command(
                f"INSERT INTO {self.table} VALUES ({{p:String}}, {{k:String}}, {{v:String}}, "
                "{d:UInt8}, {r:String}, {t:DateTime64(6, 'UTC')})",  # nosec B608
                {"p": pipeline, "k": key, "v": value, "d": deleted, "r": run_id, "t": now},
                idempotent=True,  # the same row twice: the newest per key wins either way
            )


class RunState:
    """What ``ctx.state`` gives a step: committed values plus this run's staged changes."""

    def __init__(self, committed: Mapping[str, Any]) -> None:
        self._committed = dict(committed)
        self.staged: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        """The staged value if this run set one, else the committed one."""
        if key in self.staged:
            return self.staged[key]
        return self._committed.get(key, default)

    def set(self, key: str, value: Any) -> None:
        """Stage a value; it is committed only if the whole run succeeds."""
        json.dumps(value, default=str)  # fail now, in the step, if it cannot be stored
        self.staged[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self.staged or key in self._committed
