"""The one Kubernetes gateway: statuses become the framework's errors, every call is bounded.

Driven with the real ``kubernetes`` client against the stand-in API server.
"""

import ast
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client

import runner.kube.api as gateway
from runner.deploy.cluster import create_job, find_cronjob, list_cronjobs, read_cronjob
from runner.errors import ConfigError, ExitCode, NotReadyError
from runner.kube.api import KubeConflictError, KubeNotFoundError, Target, call
from runner.state.locks.lease_api import LeaseApi, LeaseConflictError, LeaseMissingError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from k8s_apiserver import running_api

ROOT = Path(__file__).resolve().parents[2]
TARGET = Target("CronJob", "cronjobs.batch", "etl", "orders", "the caller needs 'get'")
JOB = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "etl"}}


def _configuration(url):
    configuration = client.Configuration()
    configuration.host = url
    configuration.retries = 0  # each request tried once: the bound below is one timeout
    return configuration


@pytest.fixture
def kube():
    with running_api() as server:
        yield server, client.BatchV1Api(client.ApiClient(_configuration(server.url)))


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (404, KubeNotFoundError, ExitCode.CONFIG),
        (409, KubeConflictError, ExitCode.CONFIG),
        (400, ConfigError, ExitCode.CONFIG),
        (401, ConfigError, ExitCode.CONFIG),
        (403, ConfigError, ExitCode.CONFIG),
        (422, ConfigError, ExitCode.CONFIG),
        (429, NotReadyError, ExitCode.NOT_READY),
        (500, NotReadyError, ExitCode.NOT_READY),
        (503, NotReadyError, ExitCode.NOT_READY),
    ],
)
def test_each_status_maps_to_its_error_and_exit_code(kube, status, error, code):
    server, batch = kube
    server.fail_with = status
    with pytest.raises(error) as raised:
        call(batch, "get", TARGET, batch.read_namespaced_cron_job, "orders", "etl")
    assert type(raised.value) is error
    assert raised.value.exit_code == code
    message = str(raised.value)
    assert "\n" not in message
    assert server.url in message
    assert "CronJob etl/orders" in message


def test_not_found_and_conflict_are_refined_by_the_callers(kube):
    server, batch = kube
    with pytest.raises(ConfigError, match="no CronJob etl/orders; is the release installed"):
        read_cronjob("etl", "orders", api=batch)
    create_job(JOB, api=batch)
    with pytest.raises(ConfigError, match="a Job named etl/j already exists"):
        create_job(JOB, api=batch)
    server.fail_with = 500
    with pytest.raises(NotReadyError, match=r"failed to list CronJobs in etl: HTTP 500"):
        find_cronjob("etl", "orders", None, api=batch)


def test_the_lease_names_keep_meaning_404_and_409():
    assert LeaseMissingError is KubeNotFoundError
    assert LeaseConflictError is KubeConflictError


def test_an_unreachable_server_is_not_ready():
    with running_api() as server:
        url = server.url
    batch = client.BatchV1Api(client.ApiClient(_configuration(url)))
    with pytest.raises(NotReadyError, match=rf"{url} unreachable trying to list CronJobs in etl"):
        list_cronjobs("etl", "a=b", purpose="test", api=batch)


def _lease_read(batch):
    coordination = client.CoordinationV1Api(batch.api_client)
    LeaseApi(coordination, "etl", "lock", timeout=gateway.REQUEST_TIMEOUT_SECONDS).read()


CALLS = {
    "read_cronjob": lambda batch: read_cronjob("etl", "orders", api=batch),
    "list_cronjobs": lambda batch: list_cronjobs("etl", "a=b", purpose="test", api=batch),
    "find_cronjob": lambda batch: find_cronjob("etl", "orders", None, api=batch),
    "create_job": lambda batch: create_job(JOB, api=batch),
    "lease_read": _lease_read,
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_hanging_server_is_bounded_by_the_request_timeout(kube, monkeypatch, name):
    server, batch = kube
    monkeypatch.setattr(gateway, "REQUEST_TIMEOUT_SECONDS", 0.3)
    server.hang = 5.0
    started = time.monotonic()
    with pytest.raises(NotReadyError, match=r"did not answer within 0.3s") as raised:
        CALLS[name](batch)
    assert time.monotonic() - started < 2.5
    assert raised.value.exit_code == ExitCode.NOT_READY


def test_nothing_outside_the_gateway_calls_the_api_itself():
    """An API method (``*_namespaced_*``) is only ever handed to ``call``, never called."""
    direct = []
    for path in (ROOT / "runner").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            func = getattr(node, "func", None)
            named = isinstance(func, ast.Attribute) and "_namespaced_" in func.attr
            if isinstance(node, ast.Call) and named:
                direct.append(f"{path.relative_to(ROOT)}:{node.lineno} {func.attr}")
    assert direct == []
