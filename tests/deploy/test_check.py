"""`runner check` against the embedded engine and a stand-in Kubernetes API server."""

import json
import sys
from pathlib import Path

import pytest
from kubernetes import client

from runner.deploy.checks import check_deployment
from runner.migrate.apply import Migrator
from runner.pipeline.discovery import Registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from k8s_apiserver import running_api

IMAGE = "registry.example/pipeline-runner:1.2.3"


def cronjob(pipeline, image, release="prod"):
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": f"{release}-{pipeline}",
            "namespace": "etl",
            "labels": {"app.kubernetes.io/instance": release, "pipeline-runner/pipeline": pipeline},
        },
        "spec": {
            "schedule": "0 * * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "runner", "image": image}],
                        }
                    }
                }
            },
        },
    }


@pytest.fixture
def project(tmp_path):
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    for name in ("alpha", "beta"):
        (pipelines / f"{name}_pipeline.py").write_text(
            f"from runner import el\npipeline = el({name!r}, schedule='@hourly', extract=[], load=print)\n"
        )
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_t.sql").write_text("CREATE TABLE {{database}}.t (a UInt8) ENGINE = Memory")
    return tmp_path


@pytest.fixture
def api():
    with running_api() as server:
        configuration = client.Configuration()
        configuration.host = server.url
        yield server, client.BatchV1Api(client.ApiClient(configuration))


def results(settings, project, batch_api=None):
    found = check_deployment(settings, Registry(project / "pipelines"), batch_api=batch_api)
    return {r.name: r for r in found}


def test_everything_ready(runner_settings, warehouse, project, api):
    server, batch_api = api
    Migrator(
        warehouse, project / "migrations", state_database=runner_settings.state_database
    ).apply()
    server.cronjobs["etl"] = [
        cronjob("alpha", IMAGE),
        cronjob("beta", IMAGE),
        cronjob("alpha", IMAGE, "other"),
    ]
    settings = runner_settings.model_copy(
        update={"project_dir": project, "release": "prod", "image": IMAGE, "lease_namespace": "etl"}
    )
    found = results(settings, project, batch_api)
    assert all(r.ok for r in found.values()), {k: r.detail for k, r in found.items()}
    assert set(found) == {"warehouse", "schema", "pipelines", "cronjob:alpha", "cronjob:beta"}


def test_behind_schema_missing_cronjob_and_stale_image_are_reported(
    runner_settings, warehouse, project, api
):
    server, batch_api = api
    server.cronjobs["etl"] = [
        cronjob("alpha", "registry.example/pipeline-runner:1.2.2"),
        cronjob("gone", IMAGE),
    ]
    settings = runner_settings.model_copy(
        update={"project_dir": project, "release": "prod", "image": IMAGE, "lease_namespace": "etl"}
    )
    found = results(settings, project, batch_api)
    assert found["warehouse"].ok
    assert not found["schema"].ok
    assert "schema is at migration 0, this code needs 1" in found["schema"].detail
    assert (
        "this release's image is registry.example/pipeline-runner:1.2.3"
        in found["cronjob:alpha"].detail
    )
    assert found["cronjob:beta"].detail == "no CronJob in this release"
    assert "CronJobs without a pipeline: gone" in found["cronjobs"].detail


def test_api_errors_and_an_unreachable_warehouse_are_failed_checks(
    runner_settings, project, api, tmp_path
):
    server, batch_api = api
    server.fail_with = 403
    settings = runner_settings.model_copy(
        update={
            "project_dir": project,
            "release": "prod",
            "lease_namespace": "etl",
            "database": "never_created",
        }
    )
    found = results(settings, project, batch_api)
    assert not found["warehouse"].ok
    assert "run `runner migrate` first" in found["warehouse"].detail
    assert not found["cronjobs"].ok
    assert "403" in found["cronjobs"].detail


def test_outside_a_release_the_kubernetes_part_is_skipped(runner_settings, warehouse, project):
    Migrator(
        warehouse, project / "migrations", state_database=runner_settings.state_database
    ).apply()
    found = results(runner_settings.model_copy(update={"project_dir": project}), project)
    assert found["cronjobs"].ok
    assert "skipped" in found["cronjobs"].detail


def test_cli_check_exit_codes(runner_settings, project):
    from typer.testing import CliRunner

    from runner.cli import app

    env = {
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_WAREHOUSE_URL": runner_settings.warehouse_url,
        "RUNNER_DATABASE": runner_settings.database,
        "RUNNER_STATE_DATABASE": runner_settings.state_database,
        "RUNNER_LOCK_BACKEND": "file",
    }
    runner = CliRunner()
    not_ready = runner.invoke(app, ["check", "-o", "json"], env=env)
    assert not_ready.exit_code == 4
    assert {r["name"]: r["ok"] for r in json.loads(not_ready.stdout)}["warehouse"] is False
    assert runner.invoke(app, ["migrate"], env=env).exit_code == 0
    ready = runner.invoke(app, ["check"], env=env)
    assert ready.exit_code == 0, ready.output
    assert "schema" in ready.stdout
