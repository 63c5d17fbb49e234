"""Operator commands: status, health and state, against the embedded engine."""

import json
import secrets
import textwrap

import pytest
from typer.testing import CliRunner

from runner.cli import app

PIPELINES = {
    "good": """
        from runner import clickhouse_append, el

        def extract(ctx):
            ctx.state.set("cursor", 42)
            yield {"id": 1, "ts": ctx.window.start}

        pipeline = el(
            "good",
            extract=extract,
            load=clickhouse_append("facts"),
            freshness=[{"table": "facts", "column": "ts", "min_rows": 1}],
        )
    """,
    "stale": """
        from runner import el

        pipeline = el(
            "stale",
            extract=[],
            load=lambda b: None,
            freshness=[{"table": "facts", "column": "ts", "max_age_seconds": 60}],
        )
    """,
    "counted": """
        from runner import clickhouse_append, el

        def extract(ctx):
            for i in range(int(ctx.params.get("n", "2"))):
                yield {"id": i, "ts": ctx.window.start}

        pipeline = el(
            "counted",
            extract=extract,
            load=clickhouse_append("facts"),
            checks=[{"kind": "not_null", "table": "facts", "column": "id", "time_column": "ts"}],
            volume={"windows": 3},
        )
    """,
    "broken": """
        from runner import el

        def extract():
            raise RuntimeError("api down")

        pipeline = el("broken", extract=extract, load=lambda b: None)
    """,
}


@pytest.fixture
def env(tmp_path, warehouse_path):
    (tmp_path / "pipelines").mkdir()
    for name, body in PIPELINES.items():
        (tmp_path / "pipelines" / f"{name}_pipeline.py").write_text(textwrap.dedent(body))
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_facts.sql").write_text(
        "CREATE TABLE {{database}}.facts (id UInt32, ts DateTime64(3, 'UTC')) "
        "ENGINE = MergeTree ORDER BY id"
    )
    database = f"ops_{secrets.token_hex(4)}"
    env = {
        "RUNNER_PROJECT_DIR": str(tmp_path),
        "RUNNER_WAREHOUSE_URL": f"chdb://{warehouse_path}",
        "RUNNER_DATABASE": database,
        "RUNNER_STATE_DATABASE": f"{database}_state",
        "RUNNER_LOG_FORMAT": "json",
        "RUNNER_LOCK_BACKEND": "file",
    }
    assert CliRunner().invoke(app, ["migrate"], env=env).exit_code == 0
    return env


def invoke(env, *args):
    return CliRunner().invoke(app, list(args), env=env)


def test_status_lists_runs_newest_first(env):
    assert invoke(env, "run", "good", "--start", "2026-01-01", "--end", "2026-01-02").exit_code == 0
    assert invoke(env, "run", "broken").exit_code == 1
    runs = json.loads(invoke(env, "status", "-o", "json").stdout)
    assert [r["pipeline"] for r in runs] == ["broken", "good"]
    assert runs[0]["status"] == "failed"
    assert "RuntimeError: api down" in runs[0]["error_message"]
    assert runs[1]["rows_loaded"] == 1
    text = invoke(env, "status", "good").stdout
    assert text.splitlines()[0].split()[:3] == ["PIPELINE", "RUN_ID", "STATUS"]
    assert "succeeded" in text
    assert "2026-01-01T00:00..2026-01-02T00:00" in text


def test_health_reports_failed_runs_and_freshness(env):
    unhealthy = invoke(env, "health", "-o", "json")
    assert unhealthy.exit_code == 1
    checks = {(c["pipeline"], c["check"]): c for c in json.loads(unhealthy.stdout)["checks"]}
    assert not checks[("good", "freshness:facts")]["healthy"]
    assert "0 rows, expected at least 1" in checks[("good", "freshness:facts")]["detail"]
    assert checks[("good", "last_run")]["detail"] == "never ran"
    invoke(env, "run", "good", "--start", "2026-01-01", "--end", "2026-01-02")
    invoke(env, "run", "broken")
    checks = {
        (c["pipeline"], c["check"]): c
        for c in json.loads(invoke(env, "health", "-o", "json").stdout)["checks"]
    }
    assert checks[("good", "freshness:facts")]["healthy"]
    assert checks[("good", "last_run")]["healthy"]
    assert not checks[("broken", "last_run")]["healthy"]
    assert "old, expected at most 1m" in checks[("stale", "freshness:facts")]["detail"]
    assert "FAIL" in invoke(env, "health").stdout


def test_state_show_set_reset(env):
    invoke(env, "run", "good", "--start", "2026-01-01", "--end", "2026-01-02")
    shown = json.loads(invoke(env, "state", "show", "good").stdout)
    assert shown == {"cursor": 42, "_window_end": "2026-01-02T00:00:00+00:00"}
    changed = json.loads(invoke(env, "state", "set", "good", "cursor", "100").stdout)
    assert changed["cursor"] == 100
    assert (
        json.loads(invoke(env, "state", "set", "good", "note", "hello").stdout)["note"] == "hello"
    )
    assert json.loads(invoke(env, "state", "reset", "good", "note").stdout) == {
        "cursor": 100,
        "_window_end": "2026-01-02T00:00:00+00:00",
    }
    assert json.loads(invoke(env, "state", "reset", "good").stdout) == {}
    missing = invoke(env, "state", "show", "nosuch")
    assert missing.exit_code == 3
    assert "no pipeline 'nosuch'" in missing.stderr


def test_health_lists_table_counts_and_flags_an_empty_window(env):
    for day, rows in ((1, "2"), (2, "2"), (3, "2"), (4, "0")):
        window = ["--start", f"2026-01-0{day}", "--end", f"2026-01-0{day + 1}"]
        assert invoke(env, "run", "counted", *window, "--param", f"n={rows}").exit_code == 0
    report = json.loads(invoke(env, "health", "-o", "json").stdout)
    [facts] = [t for t in report["tables"] if t["pipeline"] == "counted"]
    assert facts["table"] == "facts"
    assert facts["rows"] == 6
    assert facts["time_column"] == "ts"
    assert facts["latest"].startswith("2026-01-03 00:00:00")
    assert facts["last_written"]
    volume = {c["pipeline"]: c for c in report["checks"] if c["check"] == "volume"}["counted"]
    assert not volume["healthy"]
    assert (
        "loaded 0 rows; the 3 windows before it 2.0 on average: an empty window"
        in (volume["detail"])
    )
    assert (
        invoke(env, "run", "counted", "--start", "2026-01-05", "--end", "2026-01-06").exit_code == 0
    )
    again = json.loads(invoke(env, "health", "-o", "json").stdout)
    volume = {c["pipeline"]: c for c in again["checks"] if c["check"] == "volume"}["counted"]
    assert volume["healthy"], volume
    text = invoke(env, "health").stdout
    assert "LAST_WRITTEN" in text
