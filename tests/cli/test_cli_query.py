"""`runner query` (alias `runner sql`) on the embedded engine: formats, read-only by the
server's own setting, --write, and one-line errors with their exit codes."""

import csv
import io
import json
import os
import socket
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from runner.cli import app


@pytest.fixture
def env(runner_settings, warehouse):
    warehouse.command(
        f"CREATE TABLE {warehouse.table('facts')} (id UInt32, name String, "
        "ts DateTime64(3, 'UTC'), score Nullable(Float64), tags Array(String)) "
        "ENGINE = MergeTree ORDER BY id"
    )
    warehouse.command(
        f"INSERT INTO {warehouse.table('facts')} VALUES "
        "(1, 'a', '2026-01-01 10:00:00', 1.5, ['x', 'y']), (2, 'b,\"c\"', '2026-01-02 00:00:00', "
        "NULL, [])"
    )
    return {
        "RUNNER_PROJECT_DIR": str(runner_settings.project_dir),
        "RUNNER_WAREHOUSE_URL": runner_settings.warehouse_url,
        "RUNNER_DATABASE": runner_settings.database,
        "RUNNER_STATE_DATABASE": runner_settings.state_database,
    }


def invoke(env, *args, stdin=None):
    return CliRunner().invoke(app, list(args), env=env, input=stdin)


def count(warehouse):
    return warehouse.query_rows(f"SELECT count() FROM {warehouse.table('facts')}")[0][0]


def test_a_table_of_rows(env):
    result = invoke(env, "query", "SELECT id, name, score, tags FROM facts ORDER BY id")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["id", "name", "score", "tags"]
    assert lines[1].split() == ["1", "a", "1.5", '["x",', '"y"]']
    assert lines[2].split()[:3] == ["2", 'b,"c"', "NULL"]


def test_json_is_an_array_of_objects_with_iso_times(env):
    result = invoke(env, "sql", "-o", "json", "SELECT id, ts, score, tags FROM facts ORDER BY id")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"id": 1, "ts": "2026-01-01T10:00:00+00:00", "score": 1.5, "tags": ["x", "y"]},
        {"id": 2, "ts": "2026-01-02T00:00:00+00:00", "score": None, "tags": []},
    ]
    empty = invoke(env, "query", "-o", "json", "SELECT id FROM facts WHERE id > 100")
    assert json.loads(empty.stdout) == []


def test_csv_has_a_header_even_without_rows(env):
    result = invoke(env, "query", "--output", "csv", "SELECT id, name FROM facts ORDER BY id")
    assert list(csv.reader(io.StringIO(result.stdout))) == [
        ["id", "name"],
        ["1", "a"],
        ["2", 'b,"c"'],
    ]
    empty = invoke(env, "query", "-o", "csv", "SELECT id, name FROM facts WHERE 0")
    assert empty.stdout == "id,name\n"


def test_sql_from_stdin_and_statements_that_are_not_select(env):
    assert "facts" in invoke(env, "query", "-", stdin="SHOW TABLES\n").stdout
    described = invoke(env, "query", "-o", "json", "DESCRIBE TABLE facts;  -- a comment")
    assert [c["name"] for c in json.loads(described.stdout)] == [
        "id",
        "name",
        "ts",
        "score",
        "tags",
    ]


def test_writes_are_refused_by_the_server_unless_write_is_given(env, warehouse):
    for sql, why in (
        ("INSERT INTO facts (id) VALUES (3)", "INSERT is not a read"),
        ("insert into facts (id) SELECT 3", "INSERT is not a read"),
        ("DROP TABLE facts", "DROP is not a read"),
        ("ALTER TABLE facts DELETE WHERE 1", "ALTER is not a read"),
        ("SELECT count() FROM facts SETTINGS readonly = 0", "READONLY"),  # the server says no
    ):
        refused = invoke(env, "query", sql)
        assert refused.exit_code == 2, (sql, refused.output)
        assert why in refused.stderr
        assert refused.stderr.rstrip().endswith(
            "(runner query is read-only): pass --write to change data"
        )
        assert len(refused.stderr.strip().splitlines()) == 1
    assert count(warehouse) == 2
    written = invoke(env, "query", "--write", "INSERT INTO facts (id) VALUES (3)")
    assert written.exit_code == 0, written.output
    assert written.stderr.strip() == "ok"
    assert count(warehouse) == 3


def test_bad_sql_is_one_line_and_exit_1(env):
    result = invoke(env, "query", "SELECT id FROM facts WHERE")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ")
    assert "Syntax error" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    missing = invoke(env, "query", "SELECT * FROM no_such_table")
    assert missing.exit_code == 1
    assert "UNKNOWN_TABLE" in missing.stderr


def test_an_unreachable_warehouse_is_exit_4(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run(
        [sys.executable, "-m", "runner", "query", "SELECT 1"],
        env={
            **os.environ,
            "RUNNER_PROJECT_DIR": str(tmp_path),
            "RUNNER_WAREHOUSE_URL": f"http://127.0.0.1:{port}/analytics",
            "RUNNER_CONNECT_TIMEOUT": "2",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 4, result.stderr
    assert result.stderr.startswith(f"error: cannot connect to http://127.0.0.1:{port}/analytics")
    assert len(result.stderr.strip().splitlines()) == 1
