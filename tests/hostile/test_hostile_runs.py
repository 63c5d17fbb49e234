"""Hostile input through ``runner run`` into ClickHouse: the documented exit code, one line
on stderr naming the file or URL, no traceback, and - with the replace-window loader -
nothing of the window changed.

Most runs go through typer's CliRunner (in-process, on the session's embedded warehouse);
one test runs real subprocesses, where a stray traceback would really reach the terminal.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import textwrap

import pytest
from hostile_corpus import EMPTY_FILES, FATAL_FILES, csv_lines, good_rows, quarantine_rows, write
from typer.testing import CliRunner

from runner.cli import app
from runner.settings import Settings
from runner.warehouse.client import Warehouse

DAY = "2026-01-01"
WINDOW = ["--start", DAY, "--end", "2026-01-02"]

READERS = """
    import os
    import pyarrow as pa
    from runner.tools.extract.files import read_csv, read_jsonl, read_parquet

    SCHEMA = pa.schema([("id", pa.int64()), ("ts", pa.timestamp("ms", "UTC")), ("name", pa.string())])

    def reader():
        path = os.environ.get("HOSTILE_INPUT", "unset.csv")
        if ".jsonl" in path:
            return read_jsonl(path, schema=SCHEMA, block_size=1024)
        if path.endswith(".parquet"):
            return read_parquet(path)
        return read_csv(path, schema=SCHEMA, block_size=1024)
"""
PIPELINES = {
    "hostile_readers.py": READERS,
    "replace_file_pipeline.py": """
        from runner import clickhouse_replace_window, el
        from hostile_readers import reader

        pipeline = el(
            "replace_file",
            schedule="0 0 * * *",
            extract=reader(),
            load=clickhouse_replace_window("events", time_column="ts"),
        )
    """,
    "append_file_pipeline.py": """
        from runner import clickhouse_append, el
        from hostile_readers import reader

        pipeline = el("append_file", extract=reader(), load=clickhouse_append("events_log"))
    """,
    "api_pipeline.py": """
        import os
        from runner import clickhouse_append, el
        from runner.tools.extract.http import http_json

        pipeline = el(
            "api",
            extract=http_json(
                os.environ.get("HOSTILE_URL", "http://127.0.0.1:9/unset"),
                timeout=0.3,
                request_deadline=2.0,
                max_retries=2,
                backoff_factor=0.001,
            ),
            load=clickhouse_append("api_log"),
        )
    """,
    "checked_pipeline.py": """
        from datetime import UTC, datetime
        from typing import Annotated

        import pyarrow as pa
        from pydantic import AfterValidator, BaseModel, Field
        from runner import clickhouse_append, etl
        from runner.tools.extract.files import read_jsonl
        from runner.tools.transform.validate import validate
        import os

        def in_range(value):
            if not datetime(1970, 1, 1, tzinfo=UTC) <= value < datetime(2106, 1, 1, tzinfo=UTC):
                raise ValueError(f"{value.isoformat()} is outside what DateTime can hold")
            return value

        class Event(BaseModel):
            id: int
            ts: Annotated[datetime, AfterValidator(in_range)]
            name: Annotated[str, Field(max_length=1000)]
            amount: Annotated[float, Field(allow_inf_nan=False)]

        STRINGS = pa.schema([(n, pa.string()) for n in ("id", "ts", "name", "amount")])
        pipeline = etl(
            "checked",
            extract=read_jsonl(os.environ.get("HOSTILE_INPUT", "unset.jsonl"), schema=STRINGS),
            transform=[validate(Event, on_error="skip")],
            load=clickhouse_append("events_checked"),
        )
    """,
}
MIGRATION = """
CREATE TABLE IF NOT EXISTS {{database}}.events (id Int64, ts DateTime64(3, 'UTC'), name String)
ENGINE = MergeTree PARTITION BY toDate(ts) ORDER BY (ts, id);
CREATE TABLE IF NOT EXISTS {{database}}.events_log (id Int64, ts DateTime64(3, 'UTC'), name String)
ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 1000;
CREATE TABLE IF NOT EXISTS {{database}}.api_log (id Int64, name String)
ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 1000;
CREATE TABLE IF NOT EXISTS {{database}}.events_checked
(id Int64, ts DateTime64(3, 'UTC'), name String, amount Float64) ENGINE = MergeTree ORDER BY id;
"""


def make_project(root):
    (root / "pipelines").mkdir(parents=True)
    for name, body in PIPELINES.items():
        (root / "pipelines" / name).write_text(textwrap.dedent(body))
    (root / "migrations").mkdir()
    (root / "migrations" / "0001_hostile.sql").write_text(MIGRATION)
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("hostile-project"))


@pytest.fixture(scope="module")
def env(project, warehouse_path):
    database = f"hostile_{secrets.token_hex(4)}"
    values = {
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_WAREHOUSE_URL": f"chdb://{warehouse_path}",
        "RUNNER_DATABASE": database,
        "RUNNER_STATE_DATABASE": f"{database}_state",
        "RUNNER_LOG_FORMAT": "json",
    }
    result = CliRunner().invoke(app, ["migrate"], env=values)
    assert result.exit_code == 0, result.output
    return values


@pytest.fixture(scope="module")
def wh(env):
    settings = Settings(warehouse_url=env["RUNNER_WAREHOUSE_URL"], database=env["RUNNER_DATABASE"])
    return Warehouse.connect(settings)


def invoke(env, *args, **extra):
    return CliRunner().invoke(app, list(args), env={**env, **extra})


def assert_clean_failure(result, code, names):
    """The exit code, one line on stderr naming ``names``, no traceback anywhere."""
    assert result.exit_code == code, (result.exit_code, result.stderr, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert names in lines[0], lines[0]
    assert_no_traceback(result.stdout, result.stderr)
    return lines[0]


def assert_no_traceback(stdout, stderr):
    """No traceback on stderr; stdout is JSON lines with at most the failed step's
    traceback inside the ``exception`` field of the failure event (README: Logs)."""
    assert "Traceback" not in stderr
    for line in stdout.splitlines():
        event = json.loads(line)  # a raw traceback would not parse
        text = json.dumps({k: v for k, v in event.items() if k != "exception"})
        assert "Traceback" not in text, line[:300]
        if "exception" in event:
            assert event["event"] == "run failed"


def window_rows(warehouse, table="events"):
    return warehouse.query_rows(
        f"SELECT id, name FROM {table} WHERE ts >= '2026-01-01' AND ts < '2026-01-02' ORDER BY id"
    )


def seed_window(env, tmp_path, warehouse):
    """Load three 'old' rows into the window through the replace-window loader."""
    seed = tmp_path / "seed.csv"
    rows = [dict(row, name=f"old-{row['id']}") for row in good_rows(DAY, 3)]
    seed.write_bytes(csv_lines(rows))
    result = invoke(env, "run", "replace_file", *WINDOW, HOSTILE_INPUT=str(seed))
    assert result.exit_code == 0, result.stderr
    before = window_rows(warehouse)
    assert before == [(0, "old-0"), (1, "old-1"), (2, "old-2")]
    return before


@pytest.mark.parametrize("case", FATAL_FILES, ids=lambda c: c.name)
def test_a_bad_file_fails_the_run_and_leaves_the_window_as_it_was(case, env, wh, tmp_path):
    before = seed_window(env, tmp_path, wh)
    path = write(case, tmp_path / "in", DAY)
    result = invoke(env, "run", "replace_file", *WINDOW, HOSTILE_INPUT=str(path))
    line = assert_clean_failure(result, 1, str(path))
    assert re.search(case.error, line), line
    assert len(line) < 2000
    assert window_rows(wh) == before  # not one row of the bad file is visible
    staging = wh.query_rows(
        "SELECT name FROM system.tables WHERE database = {db:String} AND name LIKE '%staging%'",
        {"db": env["RUNNER_DATABASE"]},
    )
    assert staging == []  # the failed run dropped its staging table


@pytest.mark.parametrize("case", FATAL_FILES[:6], ids=lambda c: c.name)
def test_a_bad_file_fails_an_append_run_the_same_way(case, env, tmp_path):
    path = write(case, tmp_path, DAY)
    result = invoke(env, "run", "append_file", *WINDOW, HOSTILE_INPUT=str(path))
    line = assert_clean_failure(result, 1, str(path))
    assert re.search(case.error, line), line
    # append makes batches visible as they land (README); never those after the damage
    finished = json.loads(result.stdout.splitlines()[-1])
    assert finished["status"] == "failed"
    assert finished["steps"]["append_file"]["rows_loaded"] <= case.rows_before_damage


@pytest.mark.parametrize("case", EMPTY_FILES, ids=lambda c: c.name)
def test_an_empty_file_is_a_run_without_rows(case, env, tmp_path):
    path = write(case, tmp_path, DAY)
    result = invoke(env, "run", "append_file", *WINDOW, HOSTILE_INPUT=str(path))
    assert result.exit_code == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["status"] == "succeeded"
    assert events[-1]["steps"]["append_file"]["rows_loaded"] == 0
    assert_no_traceback(result.stdout, result.stderr)


@pytest.mark.parametrize(
    ("path", "code", "pattern"),
    [
        ("/status/500", 75, r"still returned HTTP 500 after 2 retries"),
        ("/throttled/99", 75, r"still returned HTTP 429 after 2 retries"),
        ("/stall", 75, r"ReadTimeoutError"),
        ("/truncated", 75, r"(?i)incomplete|protocol|connection"),
        ("/html", 1, r"not JSON"),
        ("/nested", 1, r"nested too deeply"),
        ("/loop/a", 1, r"redirect loop"),
        ("/status/403", 1, r"returned HTTP 403"),
        ("/retry-after/100000", 75, r"asking to wait 100000 s \(Retry-After\)"),
        ("/trickle-body", 75, r"no complete response within request_deadline=2 s"),
        ("/gzip-bomb", 1, r"larger than max_response_bytes=64 MiB once decompressed"),
    ],
)
def test_a_failing_api_fails_the_run_with_the_documented_code(
    hostile_api, env, path, code, pattern
):
    url = hostile_api.url(path)
    result = invoke(env, "run", "api", *WINDOW, HOSTILE_URL=url)
    line = assert_clean_failure(result, code, url)
    assert re.search(pattern, line), line


def test_a_flaky_api_is_retried_and_loads(hostile_api, env, wh):
    result = invoke(env, "run", "api", *WINDOW, HOSTILE_URL=hostile_api.url("/flaky/2"))
    assert result.exit_code == 0, result.stderr
    assert hostile_api.hits["/flaky/2"] == 3
    assert wh.query_rows("SELECT count() FROM api_log") >= [(2,)]


def test_invalid_rows_are_quarantined_and_the_run_goes_on(env, wh, tmp_path):
    data, reasons = quarantine_rows(DAY)
    path = tmp_path / "checked.jsonl"
    path.write_bytes(data)
    result = invoke(env, "run", "checked", *WINDOW, HOSTILE_INPUT=str(path))
    assert result.exit_code == 0, result.stderr
    assert_no_traceback(result.stdout, result.stderr)
    run_id = json.loads(result.stdout.splitlines()[-1])["run_id"]
    assert wh.query_rows("SELECT count() FROM events_checked") == [(5,)]
    stored = wh.query_rows(
        "SELECT JSONExtractString(record, 'id'), reason, step FROM _quarantine "
        "WHERE run_id = {r:String}",
        {"r": run_id},
    )
    assert len(stored) == len(reasons)
    for raw_id, reason, step in stored:
        assert step == "checked.validate"
        assert re.search(reasons[int(raw_id) if raw_id.isdigit() else -1], reason), reason


@pytest.mark.slow
def test_real_processes_print_one_line_and_no_traceback(tmp_path, hostile_api):
    """The same, as the CronJob runs it: a process per run, its own embedded warehouse."""
    project = make_project(tmp_path / "project")
    env = {
        **os.environ,
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_WAREHOUSE_URL": f"chdb://{tmp_path / 'warehouse'}",
        "RUNNER_DATABASE": "hostile",
        "RUNNER_LOG_FORMAT": "json",
        "RUNNER_LOG_DIR": str(tmp_path / "logs"),
    }

    def runner(*args, **extra):
        return subprocess.run(
            [sys.executable, "-m", "runner", *args],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert runner("migrate").returncode == 0
    seed = tmp_path / "seed.csv"
    seed.write_bytes(csv_lines(good_rows(DAY, 3)))
    assert runner("run", "replace_file", *WINDOW, HOSTILE_INPUT=str(seed)).returncode == 0
    bad = {c.name: c for c in FATAL_FILES}
    cases = [
        (
            ["run", "replace_file"],
            {"HOSTILE_INPUT": str(write(bad["unbalanced_quote_at_end"], tmp_path, DAY))},
            1,
        ),
        (
            ["run", "replace_file"],
            {"HOSTILE_INPUT": str(write(bad["binary_garbage"], tmp_path, DAY))},
            1,
        ),
        (
            ["run", "replace_file"],
            {"HOSTILE_INPUT": str(write(bad["json_invalid_utf8"], tmp_path, DAY))},
            1,
        ),
        (["run", "api"], {"HOSTILE_URL": hostile_api.url("/status/503")}, 75),
    ]
    for args, extra, code in cases:
        result = runner(*args, *WINDOW, **extra)
        assert result.returncode == code, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert next(iter(extra.values())) in lines[0]
        assert_no_traceback(result.stdout, result.stderr)
    logs = list((tmp_path / "logs").rglob("*.jsonl"))
    assert len(logs) == 5
    for log in logs:
        assert_no_traceback(log.read_text(), "")
