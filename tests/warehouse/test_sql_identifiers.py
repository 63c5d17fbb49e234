"""Table, column, database and cluster names that try SQL injection are refused with a
clear error wherever an identifier goes into SQL text; column names of the data, which
reach the INSERT, are quoted so they cannot break out of it."""

from __future__ import annotations

import secrets
import textwrap
from urllib.parse import quote

import pytest
from typer.testing import CliRunner

from runner import clickhouse_append, clickhouse_replace_window, clickhouse_upsert, el
from runner.cli import app
from runner.errors import ConfigError, PipelineDefinitionError
from runner.settings import load_settings
from runner.warehouse.client import parse_url
from runner.warehouse.sql import check_identifier, qualified_table

ATTACKS = [
    "events`; DROP TABLE victim; --",
    "events'; DROP TABLE victim; --",
    'events"; DROP TABLE victim; --',
    "events; DROP TABLE victim",
    "events DROP",
    "events--",
    "events/*x*/",
    "`events`",
    "ev\\`ents",
    "events\n",
    "events\x00",
    "events\u200b",  # zero-width space
    "\u0435vents",  # Cyrillic e
    "\uff45vents",  # fullwidth e
    "évents",
    "1events",
    "",
    " ",
    "x" * 300,
    "a.b.c",
    ".events",
    "db.",
    "db..events",
]
NOT_TEXT = [None, 42, b"events", ["events"]]


@pytest.mark.parametrize("name", ATTACKS + NOT_TEXT, ids=repr)
def test_check_identifier_refuses_anything_but_plain_names(name):
    with pytest.raises(ConfigError, match="invalid"):
        check_identifier(name, what="table")


@pytest.mark.parametrize("name", ["events", "_events", "Events_2026", "e" * 206])
def test_plain_names_pass_and_are_back_quoted(name):
    assert check_identifier(name) == name
    assert qualified_table(name, "analytics") == f"`analytics`.`{name}`"


@pytest.mark.parametrize("name", ATTACKS + NOT_TEXT, ids=repr)
@pytest.mark.parametrize(
    "loader",
    [
        clickhouse_append,
        clickhouse_upsert,
        lambda table: clickhouse_replace_window(table, time_column="ts"),
    ],
    ids=["append", "upsert", "replace_window"],
)
def test_loaders_refuse_injected_table_names_at_declaration(loader, name):
    with pytest.raises(ConfigError, match=r"invalid (table|database)"):
        loader(name)


@pytest.mark.parametrize("name", ATTACKS, ids=repr)
def test_replace_window_refuses_an_injected_time_column(name):
    with pytest.raises(ConfigError, match="invalid time column"):
        clickhouse_replace_window("events", time_column=name)


@pytest.mark.parametrize("name", NOT_TEXT, ids=repr)
def test_replace_window_refuses_a_time_column_that_is_not_text(name):
    with pytest.raises(ConfigError, match=r"replace_window\(events\): time_column: .*string"):
        clickhouse_replace_window("events", time_column=name)


@pytest.mark.parametrize("name", [a for a in ATTACKS if len(a) < 300], ids=repr)
@pytest.mark.parametrize("field", ["table", "column"])
def test_freshness_refuses_injected_names_at_declaration(field, name):
    expectation = {"table": "events", "column": "ts", field: name}
    with pytest.raises(PipelineDefinitionError, match=rf"freshness\.0\.{field}"):
        el("p", extract=[], load=print, freshness=[expectation])


@pytest.mark.parametrize("name", [a for a in ATTACKS if "\x00" not in a], ids=repr)
@pytest.mark.parametrize("setting", ["database", "state_database", "cluster"])
def test_database_and_cluster_settings_refuse_injected_names(monkeypatch, setting, name):
    monkeypatch.setenv(f"RUNNER_{setting.upper()}", name)
    with pytest.raises(ConfigError, match=f"RUNNER_{setting.upper()}") as info:
        load_settings()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", [a for a in ATTACKS if a.strip(" /.")], ids=repr)
def test_the_database_of_a_server_url_is_checked(name):
    with pytest.raises(ConfigError, match="invalid"):
        parse_url(f"http://clickhouse:8123/{quote(name, safe='')}")


HOSTILE_COLUMNS = ["x`) SELECT 1; DROP TABLE victim; --", "y'); DROP TABLE victim; --", "z\\`"]
PIPELINE = """
    from runner import clickhouse_append, clickhouse_replace_window, el

    def rows():
        yield {{"id": 1, "ts": "2026-01-01 01:00:00", {columns}}}

    pipeline = el("inject", extract=rows, load={loader})
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "loader",
    ['clickhouse_append("target")', 'clickhouse_replace_window("target", time_column="ts")'],
    ids=["append", "replace_window"],
)
@pytest.mark.parametrize("column", HOSTILE_COLUMNS, ids=repr)
def test_hostile_column_names_in_the_data_cannot_break_out_of_the_insert(
    tmp_path, warehouse_path, loader, column
):
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "inject_pipeline.py").write_text(
        textwrap.dedent(PIPELINE).format(columns=f"{column!r}: 2", loader=loader)
    )
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_tables.sql").write_text(
        "CREATE TABLE {{database}}.target (id Int64, ts DateTime('UTC'))\n"
        "ENGINE = MergeTree PARTITION BY toDate(ts) ORDER BY id;\n"
        "CREATE TABLE {{database}}.victim (id Int64) ENGINE = MergeTree ORDER BY id;\n"
        "INSERT INTO {{database}}.victim VALUES (7);\n"
    )
    database = f"inject_{secrets.token_hex(4)}"
    env = {
        "RUNNER_PROJECT_DIR": str(tmp_path),
        "RUNNER_WAREHOUSE_URL": f"chdb://{warehouse_path}",
        "RUNNER_DATABASE": database,
        "RUNNER_STATE_DATABASE": f"{database}_state",
        "RUNNER_LOG_FORMAT": "json",
    }
    runner = CliRunner()
    assert runner.invoke(app, ["migrate"], env=env).exit_code == 0
    result = runner.invoke(
        app, ["run", "inject", "--start", "2026-01-01", "--end", "2026-01-02"], env=env
    )
    # the loader refuses a column the table does not have (a pipeline/table mismatch:
    # configuration, exit 3) before any SQL is built from its name
    assert result.exit_code == 3, result.output
    assert "has no column" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    from runner.settings import Settings
    from runner.warehouse.client import Warehouse

    wh = Warehouse.connect(Settings(warehouse_url=env["RUNNER_WAREHOUSE_URL"], database=database))
    try:
        assert wh.query_rows("SELECT id FROM victim") == [(7,)]
        assert wh.query_rows("SELECT count() FROM target") == [(0,)]
    finally:
        wh.close()
