"""`runner backfill job` and `runner backfill index` end to end: the CLI, a kubeconfig
pointing at the stand-in API server, the rendered chart, and the embedded engine."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from runner.cli import app
from runner.deploy.backfill_job import cronjob_from_manifest
from runner.migrate.apply import Migrator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from k8s_apiserver import running_api

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "pipeline-runner"
RANGE = ["--start", "2026-01-01", "--end", "2026-01-04"]
PIPELINE = """
from runner import clickhouse_append, el

def extract(ctx):
    yield {"day": ctx.window.start.day}

pipeline = el("events", schedule="0 0 * * *", extract=extract, load=clickhouse_append("days"))
"""


@pytest.fixture(scope="module")
def manifest(helm3, tmp_path_factory):
    rendered = subprocess.run(
        [str(helm3), "template", "pipelines", str(CHART), "-n", "etl"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    path = tmp_path_factory.mktemp("chart") / "rendered.yaml"
    path.write_text(rendered)
    return path


@pytest.fixture
def project(tmp_path, runner_settings, warehouse):
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "events_pipeline.py").write_text(PIPELINE)
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_days.sql").write_text(
        "CREATE TABLE {{database}}.days (day UInt8) ENGINE = MergeTree ORDER BY day"
    )
    Migrator(
        warehouse, tmp_path / "migrations", state_database=runner_settings.state_database
    ).apply()
    return tmp_path


@pytest.fixture
def env(project, runner_settings):
    return {
        "RUNNER_PROJECT_DIR": str(project),
        "RUNNER_WAREHOUSE_URL": runner_settings.warehouse_url,
        "RUNNER_DATABASE": runner_settings.database,
        "RUNNER_STATE_DATABASE": runner_settings.state_database,
        "RUNNER_LOCK_BACKEND": "file",
        "RUNNER_LOG_FORMAT": "json",
    }


@pytest.mark.slow
def test_print_from_a_manifest_then_each_index_runs_its_window(
    env, manifest, warehouse, validate_k8s, newest_kube_version
):
    runner = CliRunner()
    printed = runner.invoke(
        app, ["backfill", "job", "events", *RANGE, "--from-manifest", str(manifest)], env=env
    )
    assert printed.exit_code == 0, printed.output
    validate_k8s(printed.stdout, newest_kube_version)
    job = yaml.safe_load(printed.stdout)
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == 3
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["backfill", "index", "events"]
    pod_env = {e["name"]: e.get("value") for e in container["env"]}
    assert pod_env["RUNNER_TRIGGER"] == "backfill"
    for index in range(3):  # what each pod of the Job does
        result = runner.invoke(
            app,
            ["backfill", "index", "events"],
            env={
                **env,
                "JOB_COMPLETION_INDEX": str(index),
                "RUNNER_BACKFILL_WINDOWS": pod_env["RUNNER_BACKFILL_WINDOWS"],
            },
        )
        assert result.exit_code == 0, result.output
    assert warehouse.query_rows("SELECT groupArraySorted(10)(day) FROM days") == [([1, 2, 3],)]
    status = json.loads(
        runner.invoke(app, ["backfill", "status", "events", *RANGE, "-o", "json"], env=env).stdout
    )
    assert [s["status"] for s in status] == ["succeeded"] * 3
    assert {s["trigger"] for s in status} == {"backfill"}
    again = runner.invoke(app, ["backfill", "job", "events", *RANGE, "-n", "etl"], env=env)
    assert again.exit_code == 3
    assert "every window already succeeded" in again.stderr


def test_apply_through_a_kubeconfig(env, manifest, tmp_path):
    cronjob = copy.deepcopy(cronjob_from_manifest(manifest, "events"))
    cronjob["metadata"] |= {"namespace": "etl", "uid": "0b7d5c1e-2f3a-4b5c-8d9e-0f1a2b3c4d5e"}
    with running_api() as server:
        server.cronjobs["etl"] = [cronjob]
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "standin", "cluster": {"server": server.url}}],
                    "users": [{"name": "dev", "user": {"token": "t0k3n"}}],
                    "contexts": [
                        {
                            "name": "standin",
                            "context": {"cluster": "standin", "user": "dev", "namespace": "etl"},
                        }
                    ],
                    "current-context": "standin",
                }
            )
        )
        result = CliRunner().invoke(
            app,
            ["backfill", "job", "events", *RANGE, "-n", "etl", "--parallelism", "2", "--apply"],
            env={**env, "KUBECONFIG": str(kubeconfig), "RUNNER_RELEASE": "pipelines"},
        )
        assert result.exit_code == 0, result.output
        assert "created Job etl/" in result.stdout
        [(namespace, name)] = list(server.jobs)
        stored = server.jobs[namespace, name]
        assert stored["spec"]["parallelism"] == 2
        assert stored["metadata"]["labels"]["pipeline-runner/pipeline"] == "events"
        assert "ownerReferences" not in stored["metadata"]
        missing = CliRunner().invoke(
            app,
            ["backfill", "job", "customers", *RANGE, "-n", "etl"],
            env={**env, "KUBECONFIG": str(kubeconfig)},
        )
        assert missing.exit_code == 3
