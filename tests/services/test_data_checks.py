"""Data checks: each kind passes and fails as declared, on the window's rows, in ClickHouse."""

import json
import re
from datetime import UTC, datetime

import pytest

from runner import etl
from runner.errors import CheckFailedError, PipelineDefinitionError
from runner.pipeline.discovery import Registry
from runner.pipeline.windows import Window
from runner.services.run import run_pipeline
from runner.state.check_results import CheckResults
from runner.state.runs import RunHistory
from runner.state.watermarks import StateStore

WINDOW = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
IN_WINDOW = "2026-01-01 06:00:00"
BEFORE = "2025-12-31 23:00:00"
GOOD = [
    {"id": 1, "kind": "a", "note": "x", "ts": IN_WINDOW},
    {"id": 2, "kind": "b", "note": "y", "ts": IN_WINDOW},
]
BAD = [
    {"id": 1, "kind": "a", "note": None, "ts": IN_WINDOW},
    {"id": 1, "kind": "zz", "note": "y", "ts": IN_WINDOW},
]

PIPELINE = """
import json
import re
from datetime import datetime
from runner import el, clickhouse_append

def extract(ctx):
    rows = json.loads(ctx.params["rows"])
    ctx.state.set("rows", len(rows))  # committed only when the run succeeds
    for row in rows:
        yield {**row, "ts": datetime.fromisoformat(row["ts"] + "+00:00")}

pipeline = el("chk", extract=extract, load=clickhouse_append("events"), checks=CHECKS)
"""

# kind -> (declaration, what a failure says)
KINDS = {
    "not_null": (
        {"kind": "not_null", "table": "events", "column": "note", "time_column": "ts"},
        "1 rows with note NULL",
    ),
    "unique": (
        {"kind": "unique", "table": "events", "columns": ["id"], "time_column": "ts"},
        "1 values of (id) occur more than once (2 rows)",
    ),
    "accepted_values": (
        {
            "kind": "accepted_values",
            "table": "events",
            "column": "kind",
            "values": ["a", "b"],
            "time_column": "ts",
        },
        "1 rows with kind not accepted, e.g. 'zz'",
    ),
    "row_count_between": (
        {"kind": "row_count_between", "table": "events", "min": 1, "max": 1, "time_column": "ts"},
        "2 rows, expected between [1, 1]",
    ),
    "custom_sql": (
        {
            "kind": "custom_sql",
            "name": "no_zz",
            "sql": "SELECT id FROM events WHERE kind = 'zz' "
            "AND ts >= {window_start:DateTime64(6, 'UTC')} AND ts < {window_end:DateTime64(6, 'UTC')}",
        },
        "the query returned 1 rows",
    ),
}


@pytest.fixture
def settings(runner_settings):
    return runner_settings.model_copy(update={"lock_backend": "file"})


@pytest.fixture
def events(warehouse):
    warehouse.command(
        "CREATE TABLE events (id UInt32, kind String, note Nullable(String),"
        " ts DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY id"
    )
    return warehouse


def registry_with(tmp_path, checks):
    directory = tmp_path / "pipelines"
    directory.mkdir(exist_ok=True)
    body = PIPELINE.replace("CHECKS", repr(checks))
    (directory / "chk_pipeline.py").write_text(body)
    return Registry(directory)


def run(settings, registry, rows):
    return run_pipeline(settings, registry, "chk", window=WINDOW, params={"rows": json.dumps(rows)})


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_passes_on_good_rows_and_fails_the_run_on_bad_ones(
    kind, settings, events, tmp_path
):
    declaration, message = KINDS[kind]
    registry = registry_with(tmp_path, [declaration])
    if kind == "row_count_between":
        good, bad = GOOD[:1], GOOD
    else:
        good, bad = GOOD, BAD
    passed = run(settings, registry, good)
    assert passed.status == "succeeded"
    events.command("TRUNCATE TABLE events")
    with pytest.raises(
        CheckFailedError, match="1 of 1 data checks failed: .*" + re.escape(message)
    ):
        run(settings, registry, bad)

    history = RunHistory(events, settings.state_database)
    failed, succeeded = history.recent("chk")
    assert (failed.status, failed.error_class) == ("failed", "CheckFailedError")
    assert succeeded.status == "succeeded"
    results = CheckResults(events, settings.state_database)
    [ok] = results.of_run("chk", succeeded.run_id)
    [bad_result] = results.of_run("chk", failed.run_id)
    assert (ok.kind, ok.outcome) == (kind, "passed")
    assert (bad_result.outcome, bad_result.on_fail) == ("failed", "fail")
    assert message in bad_result.detail
    # the failed run's state was not committed
    assert StateStore(events, settings.state_database).load("chk")["rows"] == len(good)


def test_a_warn_check_is_recorded_and_the_run_succeeds(settings, events, tmp_path):
    declaration = {**KINDS["not_null"][0], "on_fail": "warn"}
    broken = {"kind": "not_null", "table": "events", "column": "missing", "name": "typo"}
    registry = registry_with(tmp_path, [declaration, {**broken, "on_fail": "warn"}])
    result = run(settings, registry, BAD)
    assert result.status == "succeeded"
    by_name = {
        r.check: r
        for r in CheckResults(events, settings.state_database).of_run("chk", result.run_id)
    }
    assert by_name["not_null:events.note"].outcome == "warned"
    assert by_name["not_null:events.note"].rows == 1
    assert by_name["typo"].outcome == "warned"
    assert by_name["typo"].detail.startswith("could not run: ")
    assert "missing" in by_name["typo"].detail


def test_only_the_window_rows_are_checked(settings, events, tmp_path):
    events.command(f"INSERT INTO events VALUES (1, 'zz', NULL, '{BEFORE}')")  # earlier window
    checks = [KINDS[k][0] for k in ("not_null", "unique", "accepted_values", "custom_sql")]
    assert run(settings, registry_with(tmp_path, checks), GOOD).status == "succeeded"
    whole = {k: v for k, v in KINDS["not_null"][0].items() if k != "time_column"}
    with pytest.raises(CheckFailedError, match="1 rows with note NULL"):
        run(settings, registry_with(tmp_path, [whole]), GOOD)


def test_date_time_columns_and_replacing_tables_read_final(settings, warehouse, tmp_path):
    warehouse.command(
        "CREATE TABLE events (id UInt32, kind String, note Nullable(String), ts Date,"
        " v UInt32) ENGINE = ReplacingMergeTree(v) ORDER BY id"
    )
    warehouse.command("SYSTEM STOP MERGES events")
    warehouse.command("INSERT INTO events VALUES (1, 'a', 'x', '2026-01-01', 1)")
    warehouse.command("INSERT INTO events VALUES (1, 'a', 'x', '2026-01-01', 2)")  # a new version
    warehouse.command("INSERT INTO events VALUES (9, 'zz', NULL, '2026-01-02', 1)")  # next day
    checks = [
        {"kind": "unique", "table": "events", "columns": ["id"], "time_column": "ts"},
        {"kind": "row_count_between", "table": "events", "min": 1, "max": 1, "time_column": "ts"},
        {**KINDS["not_null"][0]},
    ]
    module = (
        "from runner import el\n"
        f"pipeline = el('chk', extract=[], load=lambda b: None, checks={checks!r})\n"
    )
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "chk_pipeline.py").write_text(module)
    result = run_pipeline(settings, Registry(tmp_path / "pipelines"), "chk", window=WINDOW)
    assert result.status == "succeeded"
    outcomes = CheckResults(warehouse, settings.state_database).of_run("chk", result.run_id)
    assert [(r.kind, r.outcome, r.rows) for r in outcomes] == [
        ("not_null", "passed", 0),
        ("row_count_between", "passed", 1),
        ("unique", "passed", 0),
    ]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("INSERT INTO events SELECT * FROM events", "INSERT is not a read"),
        ("SELECT 1 INTO OUTFILE '/tmp/x'", "INTO OUTFILE writes a file"),
        ("SELECT 1; DROP TABLE events", "one statement at a time"),
        ("SHOW TABLES", "SHOW returns no rows to count"),
        ("SELECT {since:DateTime}", "unknown parameter 'since'"),
    ],
)
def test_custom_sql_that_is_not_one_read_is_refused_when_declared(sql, message):
    check = {"kind": "custom_sql", "name": "c", "sql": sql}
    with pytest.raises(PipelineDefinitionError, match=re.escape(message)):
        etl("p", extract=[], load=lambda b: None, checks=[check])


def test_custom_sql_runs_read_only_on_a_connection_of_its_own(settings, events, tmp_path):
    # the server sees readonly = 2: a write in the statement would be refused there too
    sneaky = "SELECT 1 WHERE getSetting('readonly') != 2"
    counts = "WITH 1 AS x SELECT x FROM (SELECT 1) WHERE x IN (SELECT count() FROM events)"
    checks = [
        {"kind": "custom_sql", "name": "sneaky", "sql": sneaky, "on_fail": "warn"},
        {"kind": "custom_sql", "name": "counts", "sql": counts},
    ]
    result = run(settings, registry_with(tmp_path, checks), GOOD)
    by_name = {
        r.check: r
        for r in CheckResults(events, settings.state_database).of_run("chk", result.run_id)
    }
    assert by_name["counts"].outcome == "passed"
    assert by_name["sneaky"].outcome == "passed"
    # the run's own connection still writes after the read-only check
    events.command("INSERT INTO events VALUES (7, 'a', 'x', now64())")


def test_check_names_are_unique_and_declarations_precise():
    twice = [KINDS["not_null"][0], KINDS["not_null"][0]]
    with pytest.raises(
        PipelineDefinitionError, match=r"two checks are called 'not_null:events\.note'"
    ):
        etl("p", extract=[], load=lambda b: None, checks=twice)
    with pytest.raises(
        PipelineDefinitionError, match=r"checks\.0\.row_count_between: min \(2\) is above max \(1\)"
    ):
        etl(
            "p",
            extract=[],
            load=lambda b: None,
            checks=[{"kind": "row_count_between", "table": "t", "min": 2, "max": 1}],
        )
