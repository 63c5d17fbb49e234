"""Hostile command lines: statements smuggled past read-only queries, escape codes in
values and results, plans that would never finish, names and schedules built to break
messages.  Each answer is one line and a documented exit code; nothing is written."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from runner.cli import app
from runner.errors import UsageError
from runner.pipeline.backfill import MAX_WINDOWS, parse_step, plan_windows
from runner.pipeline.spec import build_spec
from runner.pipeline.windows import parse_instant


@pytest.fixture
def env(runner_settings, warehouse, tmp_path):
    warehouse.command(
        f"CREATE TABLE {warehouse.table('facts')} (id UInt32, note String) "
        "ENGINE = MergeTree ORDER BY id"
    )
    warehouse.command(
        f"INSERT INTO {warehouse.table('facts')} VALUES (1, 'bell\\x07 clear\\x1b[2J done')"
    )
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "every_minute_pipeline.py").write_text(
        "from runner import el\n"
        "pipeline = el('every_minute', schedule='* * * * *', extract=[], load=print)\n"
    )
    return {
        "RUNNER_PROJECT_DIR": str(tmp_path),
        "RUNNER_WAREHOUSE_URL": runner_settings.warehouse_url,
        "RUNNER_DATABASE": runner_settings.database,
        "RUNNER_STATE_DATABASE": runner_settings.state_database,
        "RUNNER_LOCK_BACKEND": "file",
    }


def invoke(env, *args):
    return CliRunner().invoke(app, list(args), env=env)


def rows(warehouse):
    return warehouse.query_rows(f"SELECT count() FROM {warehouse.table('facts')}")[0][0]


@pytest.mark.parametrize(
    "case",
    [
        ("SELECT 1; DROP TABLE facts", 2, "one statement at a time: found 2"),
        ("SELECT 1;\n;\nDROP TABLE facts;", 2, "the second starts on line 3"),
        ("SET readonly = 0", 2, "SET is not a read"),
        ("SELECT * FROM facts SETTINGS readonly = 0", 2, "Cannot modify 'readonly' setting"),
        # readonly = 2 alone lets this one through (it wrote a file in the engine's directory)
        ("INSERT INTO FUNCTION file('escape.csv', 'CSV', 'x UInt8') SELECT 1", 2, "not a read"),
        # the embedded engine writes INTO OUTFILE even with readonly = 2
        ("SELECT 1 INTO OUTFILE 'escape.csv'", 2, "INTO OUTFILE writes a file"),
        ("WITH 1 AS x SELECT x into\n outfile 'escape.csv'", 2, "INTO OUTFILE writes a file"),
        ("EXPLAIN SELECT 1 INTO OUTFILE 'escape.csv'", 2, "INTO OUTFILE writes a file"),
        ("CREATE TABLE facts_copy AS facts", 2, "CREATE is not a read"),
        ("TRUNCATE TABLE facts", 2, "TRUNCATE is not a read"),
        ("  /* hide */ insert into facts (id) values (9)", 2, "INSERT is not a read"),
        ("(DROP TABLE facts)", 2, "DROP is not a read"),
        ("", 2, "no SQL statement given"),
        ("/* only a comment */", 2, "no SQL statement given"),
    ],
)
def test_read_only_queries_cannot_be_talked_into_writing(
    env, warehouse, tmp_path, monkeypatch, case
):
    sql, code, message = case
    monkeypatch.chdir(tmp_path)
    result = invoke(env, "query", sql)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert rows(warehouse) == 1
    assert warehouse.query_rows(
        "SELECT count() FROM system.tables WHERE database = {d:String} AND name = 'facts'",
        {"d": warehouse.database},
    ) == [(1,)]
    assert not list(tmp_path.rglob("escape.csv"))


def test_the_words_into_outfile_inside_a_string_are_data(env):
    result = invoke(env, "query", "-o", "csv", "SELECT 'into outfile' AS s, 'it''s' AS t")
    assert result.exit_code == 0, result.output
    assert result.stdout == "s,t\ninto outfile,it's\n"


def test_a_semicolon_inside_comments_and_strings_is_one_statement(env, warehouse):
    result = invoke(env, "query", "-o", "json", "SELECT ';' AS s /* ; DROP */ -- ; DROP")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"s": ";"}]
    assert rows(warehouse) == 1


def test_escape_codes_in_results_cannot_drive_the_terminal(env):
    table = invoke(env, "query", "SELECT note FROM facts")
    assert "\x1b" not in table.stdout
    assert "\x07" not in table.stdout
    assert "\\x1b[2J" in table.stdout
    shown = invoke(env, "query", "-o", "json", "SELECT note FROM facts")
    assert "\x1b" not in shown.stdout
    assert json.loads(shown.stdout)[0]["note"] == "bell\x07 clear\x1b[2J done"


def test_escape_codes_in_a_flag_value_are_shown_escaped(env):
    result = invoke(env, "run", "every_minute", "--start", "2026-01-01\x1b[31m", "--end", "x")
    assert result.exit_code == 2
    assert "\x1b" not in result.stderr
    assert "--start: '2026-01-01\\x1b[31m' is not an ISO 8601" in result.stderr


@pytest.mark.slow
def test_plans_that_would_not_finish_are_refused_before_they_are_built(env):
    every_minute = invoke(
        env, "backfill", "plan", "every_minute", "--start", "2000-01-01", "--end", "2020-01-01"
    )
    assert every_minute.exit_code == 2
    assert f"more than {MAX_WINDOWS:,} scheduled windows" in every_minute.stderr
    stepped = invoke(
        env,
        "backfill",
        "run",
        "every_minute",
        "--start",
        "1900-01-01",
        "--end",
        "2299-12-31",
        "--step",
        "1m",
        "--yes",
    )
    assert stepped.exit_code == 2
    assert f"more than {MAX_WINDOWS:,} windows of 1m" in stepped.stderr


def test_step_counts_cannot_overflow_the_calendar():
    spec = build_spec(name="p")
    start, end = parse_instant("1900-01-01"), parse_instant("2299-12-31T23:59:59.999")
    for text in ("999999y", "999999mo", "999999w"):
        [window] = plan_windows(spec, start, end, parse_step(text))
        assert (window.start, window.end) == (start, end)
    with pytest.raises(UsageError, match="is not a step"):
        parse_step("9" * 40 + "d")


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:59:59+14:00",
        "0001-01-01T00:00:00-14:00",
        "2026-13-01",
        "\uff12\uff10\uff12\uff16-01-01",
    ],
)
def test_extreme_or_odd_instants_are_usage_errors(text):
    with pytest.raises(UsageError) as info:
        parse_instant(text)
    assert "\n" not in str(info.value)


def test_a_hostile_pipeline_name_and_schedule_get_one_line(tmp_path):
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    long_name = "x" * 200
    (pipelines / f"{long_name}_pipeline.py").write_text(
        f"from runner import el\npipeline = el({long_name!r}, extract=[], load=print)\n"
    )
    huge_cron = ",".join(["1"] * 5000) + ",99 * * * *"
    (pipelines / "cron_pipeline.py").write_text(
        textwrap.dedent(
            f"""
            from runner import el
            pipeline = el("cron", schedule={huge_cron!r}, extract=[], load=print)
            """
        )
    )
    (pipelines / "helper_exit.py").write_text("raise SystemExit(0)\n")
    (pipelines / "quits_pipeline.py").write_text("import helper_exit\n")
    result = subprocess.run(
        [sys.executable, "-m", "runner", "list"],
        env={**os.environ, "RUNNER_PROJECT_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 3, result.stderr
    assert any("name: too long (200 characters, at most 48" in e for e in errors)
    assert any("minute 99 out of range (0-59)" in e for e in errors)
    assert any(
        "quits_pipeline.py:1: import failed: SystemExit" in e
        and "(in pipelines/helper_exit.py:1)" in e
        for e in errors
    )
