"""A run pushes its metrics to a Pushgateway: PUT after a success, POST after a failure."""

import time
from datetime import UTC, datetime

import pytest
from http_receiver import running_receiver
from prometheus_client.parser import text_string_to_metric_families

from runner.errors import FatalError
from runner.ops.metrics import JOB, metric_names
from runner.pipeline.discovery import Registry
from runner.pipeline.windows import Window
from runner.services.run import run_pipeline

PIPELINE = """
from pydantic import BaseModel, Field
from runner import etl
from runner.tools.transform.validate import validate

OUT = []

class Row(BaseModel):
    i: int = Field(ge=0)

def extract(ctx):
    yield [{"i": 1}, {"i": -1}, {"i": 2}, {"i": -2}, {"i": 3}]
    if ctx.params.get("fail"):
        raise ValueError("source broke")

pipeline = etl(
    "numbers",
    schedule="0 * * * *",
    extract=extract,
    transform=[validate(Row, on_error="skip")],
    load=OUT.extend,
)
"""
WINDOW = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC))
GROUP = f"/metrics/job/{JOB}/pipeline/numbers/trigger/manual"


API_PIPELINE = """
import os
from runner import el
from runner.tools.extract.http import http_json

pipeline = el(
    "api",
    extract=http_json(os.environ["TEST_API_URL"], backoff_factor=0.001, timeout=5.0),
    load=lambda batch: None,
)
"""


@pytest.fixture
def registry(tmp_path):
    directory = tmp_path / "pipelines"
    directory.mkdir()
    (directory / "numbers_pipeline.py").write_text(PIPELINE)
    (directory / "api_pipeline.py").write_text(API_PIPELINE)
    return Registry(directory)


def samples(body):
    """{(name, frozenset(labels)): value} of a pushed body, parsed by prometheus_client."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(found, name, **labels):
    return found[(f"pipeline_runner_{name}", frozenset({"pipeline": "numbers", **labels}.items()))]


def pushing(runner_settings, url, **extra):
    return runner_settings.model_copy(
        update={"lock_backend": "file", "pushgateway_url": url, **extra}
    )


def test_a_succeeded_run_puts_its_whole_group(runner_settings, registry, warehouse):
    with running_receiver() as gateway:
        before = time.time()
        result = run_pipeline(
            pushing(runner_settings, gateway.url), registry, "numbers", window=WINDOW
        )
    assert result.status == "succeeded"
    [push] = gateway.requests
    assert (push.method, push.path) == ("PUT", GROUP)
    found = samples(push.body)
    run = {"trigger": "manual"}
    assert value(found, "last_run_status", status="succeeded", **run) == 1
    assert value(found, "last_run_status", status="failed", **run) == 0
    assert value(found, "last_run_exit_code", **run) == 0
    assert before <= value(found, "last_success_timestamp_seconds", **run) <= time.time()
    assert value(found, "last_success_timestamp_seconds", **run) == value(
        found, "last_run_timestamp_seconds", **run
    )
    assert 0 < value(found, "last_run_duration_seconds", **run) < 60
    assert value(found, "last_run_window_end_timestamp_seconds", **run) == WINDOW.end.timestamp()
    step = {"step": "numbers", **run}
    assert value(found, "last_run_rows_extracted", **step) == 5
    assert value(found, "last_run_rows_loaded", **step) == 3
    assert value(found, "last_run_rows_quarantined", **step) == 2
    assert value(found, "last_run_bytes_loaded", **step) > 0
    assert value(found, "last_run_retries", **run) == 0
    assert value(found, "schedule_interval_seconds") == 3600
    assert {name for name, _ in found} <= set(metric_names())


def test_a_failed_run_posts_everything_but_its_last_success(runner_settings, registry, warehouse):
    with running_receiver() as gateway, pytest.raises(FatalError):
        run_pipeline(
            pushing(runner_settings, gateway.url),
            registry,
            "numbers",
            window=WINDOW,
            params={"fail": "1"},
        )
    [push] = gateway.requests
    # POST replaces only the metric names it carries: the group keeps the time of the
    # last success that an earlier PUT left there
    assert (push.method, push.path) == ("POST", GROUP)
    found = samples(push.body)
    run = {"trigger": "manual"}
    assert value(found, "last_run_status", status="failed", **run) == 1
    assert value(found, "last_run_status", status="succeeded", **run) == 0
    assert value(found, "last_run_exit_code", **run) == 1
    assert value(found, "last_run_rows_extracted", step="numbers", **run) == 5
    assert not [name for name, _ in found if name.endswith("last_success_timestamp_seconds")]


def test_a_gateway_error_is_retried_and_a_dead_one_never_fails_the_run(
    runner_settings, registry, warehouse
):
    with running_receiver(statuses=[503, 200]) as gateway:
        run_pipeline(pushing(runner_settings, gateway.url), registry, "numbers", window=WINDOW)
    assert [r.method for r in gateway.requests] == ["PUT", "PUT"]
    with running_receiver() as closed:
        url = closed.url  # nothing listens there once the block is over
    result = run_pipeline(pushing(runner_settings, url), registry, "numbers", window=WINDOW)
    assert result.status == "succeeded"


def test_catch_up_windows_push_to_the_schedule_group(runner_settings, registry, warehouse):
    settings = pushing(runner_settings, "").model_copy(update={"trigger": "catchup"})
    with running_receiver() as gateway:
        run_pipeline(
            settings.model_copy(update={"pushgateway_url": gateway.url}),
            registry,
            "numbers",
            window=WINDOW,
        )
    [push] = gateway.requests
    assert push.path == f"/metrics/job/{JOB}/pipeline/numbers/trigger/schedule"


def test_retried_transient_errors_are_counted(runner_settings, registry, warehouse, monkeypatch):
    with running_receiver(statuses=[503, 503, 200]) as api, running_receiver() as gateway:
        api.body = b'[{"id": 1}, {"id": 2}]'
        monkeypatch.setenv("TEST_API_URL", f"{api.url}/items")
        result = run_pipeline(pushing(runner_settings, gateway.url), registry, "api", window=WINDOW)
    assert result.steps["api"].rows_loaded == 2
    [push] = gateway.requests
    found = samples(push.body)
    labels = frozenset({"pipeline": "api", "trigger": "manual"}.items())
    assert found[("pipeline_runner_last_run_retries", labels)] == 2
    assert (
        "pipeline_runner_schedule_interval_seconds",
        frozenset({"pipeline": "api"}.items()),
    ) not in found
