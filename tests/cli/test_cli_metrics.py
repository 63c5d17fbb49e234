"""``runner metrics``: the warehouse's run history, parsed back by prometheus_client."""

import secrets
import textwrap
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from runner.cli import app
from runner.ops.metrics import metric_names

PIPELINES = {
    "numbers": """
        from runner import clickhouse_append, el

        def extract(ctx):
            if ctx.params.get("fail"):
                raise ValueError("source broke")
            return [{"id": i, "ts": 1767225600 + i} for i in range(4)]

        pipeline = el(
            "numbers",
            schedule="0 9 * * 1-5",
            extract=extract,
            load=clickhouse_append("numbers"),
            freshness=[{"table": "numbers", "column": "ts", "max_age_seconds": 3600}],
        )
    """,
    "other": """
        from runner import el

        pipeline = el(
            "other",
            extract=[{"i": 1}],
            load=lambda batch: None,
            freshness=[{"table": "missing_table", "column": "ts"}],
        )
    """,
}
MIGRATION = (
    "CREATE TABLE IF NOT EXISTS {{database}}.numbers (id UInt32, ts DateTime('UTC')) "
    "ENGINE = MergeTree ORDER BY id;\n"
)


@pytest.fixture
def env(tmp_path, warehouse_path):
    (tmp_path / "pipelines").mkdir()
    for name, body in PIPELINES.items():
        (tmp_path / "pipelines" / f"{name}_pipeline.py").write_text(textwrap.dedent(body))
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_numbers.sql").write_text(MIGRATION)
    database = f"metrics_{secrets.token_hex(4)}"
    return {
        "RUNNER_PROJECT_DIR": str(tmp_path),
        "RUNNER_WAREHOUSE_URL": f"chdb://{warehouse_path}",
        "RUNNER_DATABASE": database,
        "RUNNER_STATE_DATABASE": f"{database}_state",
        "RUNNER_LOG_FORMAT": "json",
    }


def invoke(env, *args):
    return CliRunner().invoke(app, list(args), env=env)


def parsed(text):
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def key(name, **labels):
    return (f"pipeline_runner_{name}", frozenset(labels.items()))


def test_metrics_after_a_success_and_a_failure(env, tmp_path):
    assert invoke(env, "migrate").exit_code == 0
    window = ["--start", "2026-01-01", "--end", "2026-01-02"]
    before = time.time()
    assert invoke(env, "run", "numbers", *window).exit_code == 0
    between = time.time()
    assert invoke(env, "run", "numbers", *window, "-p", "fail=1").exit_code == 1
    assert invoke(env, "run", "other", *window).exit_code == 0

    result = invoke(env, "metrics")
    assert result.exit_code == 0, result.output
    found = parsed(result.stdout)
    assert {name for name, _ in found} <= set(metric_names())
    run = {"pipeline": "numbers", "trigger": "manual"}
    assert found[key("last_run_status", status="failed", **run)] == 1
    assert found[key("last_run_status", status="succeeded", **run)] == 0
    assert found[key("last_run_exit_code", **run)] == 1
    assert before <= found[key("last_success_timestamp_seconds", **run)] <= between
    assert found[key("last_run_timestamp_seconds", **run)] >= between
    assert found[key("history_runs", status="succeeded", **run)] == 1
    assert found[key("history_runs", status="failed", **run)] == 1
    # the weekday schedule's longest gap is the weekend, not a day
    assert found[key("schedule_interval_seconds", pipeline="numbers")] == 3 * 86400
    assert key("schedule_interval_seconds", pipeline="other") not in found
    table = {"pipeline": "numbers", "table": "numbers"}
    assert found[key("freshness_up", **table)] == 1
    assert found[key("freshness_rows", **table)] == 4
    assert found[key("freshness_newest_timestamp_seconds", **table)] == 1767225603
    assert found[key("freshness_max_age_seconds", **table)] == 3600
    assert found[key("freshness_up", pipeline="other", table="missing_table")] == 0
    assert found[key("last_run_status", status="succeeded", pipeline="other", trigger="manual")]

    textfile = tmp_path / "collector" / "runner.prom"
    textfile.parent.mkdir()
    written = invoke(env, "metrics", "--textfile", str(textfile))
    assert (written.exit_code, written.stdout) == (0, "")
    assert parsed(textfile.read_text()).keys() == found.keys()


def test_an_unwritable_textfile_and_a_broken_pipeline_are_one_line_each(env, tmp_path):
    assert invoke(env, "migrate").exit_code == 0
    missing = invoke(env, "metrics", "--textfile", str(tmp_path / "no" / "such" / "x.prom"))
    assert missing.exit_code == 3
    assert missing.stderr.startswith("error: ")
    assert "cannot write metrics" in missing.stderr
    assert len(missing.stderr.splitlines()) == 1
    (tmp_path / "pipelines" / "broken_pipeline.py").write_text("import nowhere\n")
    broken = invoke(env, "metrics")
    assert broken.exit_code == 3
    assert "broken_pipeline.py" in broken.stderr
    assert parsed(broken.stdout)[key("schedule_interval_seconds", pipeline="numbers")] > 0
