"""The framework's own tables: created and given their retention by migrate, never by a run."""

import re
from datetime import UTC, datetime

import pytest

from runner.migrate.framework import Retention, ensure_framework_tables, table_ttl_days
from runner.pipeline.discovery import Registry
from runner.pipeline.windows import Window
from runner.services.run import run_pipeline
from runner.state.runs import RunHistory, runs_ddl
from runner.warehouse.client import Warehouse

DDL = re.compile(r"^\s*(CREATE|ALTER|DROP|RENAME|TRUNCATE|ATTACH|DETACH)\b", re.IGNORECASE)


class Recording:
    """A clickhouse-connect client that notes every statement it is given."""

    def __init__(self, client, seen):
        self._client = client
        self._seen = seen

    def __getattr__(self, name):
        call = getattr(self._client, name)
        if not callable(call):
            return call

        def noted(*args, **kwargs):
            if args and isinstance(args[0], str):
                self._seen.append(args[0])
            return call(*args, **kwargs)

        return noted


def recording(warehouse, seen):
    warehouse._client = Recording(warehouse._client, seen)
    return warehouse


def ttls(warehouse, state_database):
    return (
        table_ttl_days(warehouse, f"`{state_database}`.`runs`"),
        table_ttl_days(warehouse, f"`{state_database}`.`check_results`"),
        table_ttl_days(warehouse, warehouse.table("_quarantine")),
    )


def test_retention_is_set_changed_and_left_alone(warehouse, runner_settings):
    state = runner_settings.state_database
    assert ttls(warehouse, state) == (365, 365, 90)  # the defaults, at creation
    ensure_framework_tables(warehouse, state, retention=Retention(30, 7))
    assert ttls(warehouse, state) == (30, 30, 7)
    ensure_framework_tables(warehouse, state, retention=Retention(0, 7))
    assert ttls(warehouse, state) == (None, None, 7)
    seen = []
    ensure_framework_tables(recording(warehouse, seen), state, retention=Retention(0, 7))
    assert not [s for s in seen if s.lstrip().upper().startswith("ALTER")]


def test_a_runs_table_from_before_retention_gets_it_and_keeps_its_rows(runner_settings):
    warehouse = Warehouse.connect(runner_settings, ensure_database=True)
    state = runner_settings.state_database
    try:
        warehouse.command(f"CREATE DATABASE `{state}`")
        warehouse.command(runs_ddl(state, None))  # as an earlier version created it
        warehouse.command(
            f"INSERT INTO `{state}`.runs (run_id, pipeline, started_at, window_start, window_end,"
            " heartbeat_at, status, updated_at) VALUES ('r1', 'p', now64(), now64(), now64(),"
            " now64(), 'succeeded', now64())"
        )
        assert table_ttl_days(warehouse, f"`{state}`.`runs`") is None
        ensure_framework_tables(warehouse, state, retention=Retention(400, 30))
        assert table_ttl_days(warehouse, f"`{state}`.`runs`") == 400
        assert [r.run_id for r in RunHistory(warehouse, state).recent("p")] == ["r1"]
    finally:
        warehouse.command(f"DROP DATABASE IF EXISTS `{state}`")
        warehouse.command(f"DROP DATABASE IF EXISTS `{warehouse.database}`")
        warehouse.close()


@pytest.mark.parametrize("checks", [False, True])
def test_a_second_run_issues_no_ddl(warehouse, runner_settings, tmp_path, checks):
    warehouse.command(
        "CREATE TABLE facts (id UInt32, ts DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY id"
    )
    declared = [{"kind": "unique", "table": "facts", "columns": ["id"], "time_column": "ts"}]
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "facts_pipeline.py").write_text(
        "from runner import el, clickhouse_append\n"
        "def extract(ctx):\n"
        "    yield {'id': ctx.window.start.day, 'ts': ctx.window.start}\n"
        "pipeline = el('facts', extract=extract, load=clickhouse_append('facts'),"
        f" checks={declared if checks else []!r})\n"
    )
    registry = Registry(tmp_path / "pipelines")
    settings = runner_settings.model_copy(update={"lock_backend": "file"})
    seen: list[str] = []

    def connect():
        return recording(Warehouse.connect(settings), seen)

    for day in (1, 2):
        window = Window(datetime(2026, 1, day, tzinfo=UTC), datetime(2026, 1, day + 1, tzinfo=UTC))
        seen.clear()
        result = run_pipeline(settings, registry, "facts", window=window, connect=connect)
        assert result.status == "succeeded"
    assert seen  # the second run was recorded statement by statement
    assert [s for s in seen if DDL.match(s)] == []
