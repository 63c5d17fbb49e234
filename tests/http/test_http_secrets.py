"""The ClickHouse password over HTTPS is a canary: it travels in the Authorization header of
every request and appears in no URL, statement, log line, error or command output."""

from __future__ import annotations

import pytest
from http_pipelines import WINDOW, load_migrations, load_pipelines, small_batches

pytestmark = pytest.mark.http
BROKEN = """
from runner import el
from runner.tools.load.clickhouse import clickhouse_append


def extract(ctx):
    yield [{"id": 1}]
    raise RuntimeError("boom")


pipeline = el("broken", extract=extract, load=clickhouse_append("t_append"))
"""


@pytest.mark.slow
def test_the_password_travels_in_the_auth_header_only(http_project, tmp_path):
    project = http_project(
        pipelines={**load_pipelines(), "broken_pipeline.py": BROKEN},
        migrations=load_migrations(),
    )
    canary = project.server.password
    assert canary.startswith("canary-")
    logs = tmp_path / "logs"
    env = {"RUNNER_LOG_LEVEL": "debug", "RUNNER_LOG_DIR": str(logs), **small_batches()}
    project.server.clear_requests()
    outputs = []
    for args in (
        ["migrate"],
        ["migrate", "status"],
        ["run", "load_append", *WINDOW],
        ["run", "broken", *WINDOW],
        ["status"],
        ["status", "load_append", "-o", "json"],
        ["health", "-o", "json"],
        ["check"],
        ["state", "show", "load_append"],
        ["show", "load_append"],
        ["list", "-o", "json"],
    ):
        result = project.runner(*args, check=False, **env)
        assert result.returncode in (0, 1), (args, result.stderr)
        outputs += [result.stdout, result.stderr]
    # an error path that carries the driver's own message: an answer lost mid-insert
    project.server.set_faults(
        {"match": "INSERT INTO", "phase": "after", "action": "reset", "times": -1}
    )
    lost = project.runner("run", "load_replace", *WINDOW, check=False, **env)
    assert lost.returncode == 75
    outputs += [lost.stdout, lost.stderr]
    files = list(logs.rglob("*.jsonl"))
    assert files
    outputs += [f.read_text() for f in files]
    for text in outputs:
        assert canary not in text, text[:2000]
    requests = project.server.requests()
    assert len(requests) > 100
    assert {r["auth"] for r in requests} == {"basic"}  # checked by the server: it was sent
    for request in requests:
        assert canary not in request["url"]
        assert canary not in (request["sql"] or "")
