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


# -- helm test judges what the chart intended -------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
INTENDED_VALUES = {
    "image": {"repository": "registry.example/pipeline-runner", "tag": "1.2.3"},
    "pipelines": {
        "customers": {"image": {"tag": "1.2.4-hotfix"}},
        "daily_revenue": {
            "image": {"repository": "registry.example/other", "digest": "sha256:" + "c" * 64}
        },
        "exports": {"enabled": False},
    },
}


def rendered_release(helm, tmp_path, values):
    """`helm template` of the project's chart as release prod in namespace etl."""
    import subprocess

    import yaml

    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    out = subprocess.run(
        [
            *(str(helm), "template", "prod", str(ROOT / "charts" / "pipeline-runner")),
            *("--namespace", "etl", "-f", str(path)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    for doc in docs:
        doc["metadata"].setdefault("namespace", "etl")  # what helm install -n etl does
    return docs


def check_pod_settings(runner_settings, docs):
    """Settings as the `helm test` pod gets them: its ConfigMap, then its literal env."""
    [pod] = [d for d in docs if d["kind"] == "Pod"]
    [container] = pod["spec"]["containers"]
    [config] = [
        d
        for d in docs
        if d["kind"] == "ConfigMap"
        and d["metadata"]["name"] == container["envFrom"][0]["configMapRef"]["name"]
    ]
    environ = dict(config["data"]) | {
        e["name"]: e["value"] for e in container["env"] if "value" in e
    }
    update = {
        "release": environ["RUNNER_RELEASE"],
        "image": environ["RUNNER_IMAGE"],
        "disabled_pipelines": json.loads(environ["RUNNER_DISABLED_PIPELINES"]),
        "pipeline_images": json.loads(environ["RUNNER_PIPELINE_IMAGES"]),
        "lease_namespace": "etl",
        "project_dir": ROOT,
    }
    return runner_settings.model_copy(update=update)


@pytest.fixture(params=[3, 4], ids=["helm3", "helm4"])
def helm(request):
    return request.getfixturevalue(f"helm{request.param}")


def test_helm_test_passes_with_image_overrides_and_a_disabled_pipeline(
    helm, runner_settings, api, tmp_path
):
    server, batch_api = api
    docs = rendered_release(helm, tmp_path, INTENDED_VALUES)
    server.cronjobs["etl"] = [d for d in docs if d["kind"] == "CronJob"]
    settings = check_pod_settings(runner_settings, docs)
    assert settings.disabled_pipelines == ["exports"]
    assert settings.pipeline_images == {
        "customers": "registry.example/pipeline-runner:1.2.4-hotfix",
        "daily_revenue": "registry.example/other@sha256:" + "c" * 64,
    }
    found = check_deployment(settings, Registry(ROOT / "pipelines"), batch_api=batch_api)
    cronjobs = {r.name: r for r in found if r.name.startswith("cronjob")}
    assert set(cronjobs) == {"cronjob:customers", "cronjob:daily_revenue", "cronjob:events"}
    assert all(r.ok for r in cronjobs.values()), {k: r.detail for k, r in cronjobs.items()}
    assert cronjobs["cronjob:daily_revenue"].detail == "registry.example/other@sha256:" + "c" * 64


def test_helm_test_fails_what_the_chart_did_not_intend(helm, runner_settings, api, tmp_path):
    server, batch_api = api
    docs = rendered_release(helm, tmp_path, INTENDED_VALUES)
    settings = check_pod_settings(runner_settings, docs)
    # the live CronJobs are those of an older install: every image the release's,
    # and exports still there although it is now disabled
    stale = rendered_release(helm, tmp_path, {"image": INTENDED_VALUES["image"]})
    server.cronjobs["etl"] = [d for d in stale if d["kind"] == "CronJob"]
    found = {
        r.name: r
        for r in check_deployment(settings, Registry(ROOT / "pipelines"), batch_api=batch_api)
    }
    assert found["cronjob:events"].ok
    assert not found["cronjob:customers"].ok
    assert found["cronjob:customers"].detail == (
        "runs registry.example/pipeline-runner:1.2.3, its image override is "
        "registry.example/pipeline-runner:1.2.4-hotfix"
    )
    assert not found["cronjob:daily_revenue"].ok
    assert not found["cronjob:exports"].ok
    assert found["cronjob:exports"].detail == "the pipeline is disabled, yet has a CronJob"


def test_a_release_naming_pipelines_the_image_lacks_fails_the_check(runner_settings, project, api):
    server, batch_api = api
    server.cronjobs["etl"] = [cronjob("alpha", IMAGE), cronjob("beta", IMAGE)]
    settings = runner_settings.model_copy(
        update={
            "project_dir": project,
            "release": "prod",
            "image": IMAGE,
            "lease_namespace": "etl",
            "disabled_pipelines": ["gamma"],
        }
    )
    found = results(settings, project, batch_api)
    assert not found["intended"].ok
    assert "this image does not have: gamma" in found["intended"].detail
    assert found["cronjob:alpha"].ok
