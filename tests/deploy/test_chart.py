"""The Helm chart through the real Helm 3 and Helm 4 binaries, validated against the
official Kubernetes schemas and the semantic rules those schemas miss."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from runner.pipeline.spec import check_cron

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "pipeline-runner"
VALUES = Path(__file__).parent / "values"
EXAMPLES = {"events", "customers", "daily_revenue", "exports"}
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
VALUE_SETS = [None, "overrides.yaml", "gitops.yaml"]


@pytest.fixture(params=[3, 4], ids=["helm3", "helm4"])
def helm(request):
    return request.getfixturevalue(f"helm{request.param}")


def run_helm(helm, *args, check=True):
    result = subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def template(helm, values=None, *extra):
    args = ["template", "pipelines", str(CHART), "--namespace", "etl", *extra]
    if values:
        args += ["-f", str(VALUES / values)]
    return run_helm(helm, *args).stdout


def documents(text):
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def pod_specs(doc):
    if doc["kind"] == "CronJob":
        return [doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]]
    if doc["kind"] == "Job":
        return [doc["spec"]["template"]["spec"]]
    if doc["kind"] == "Pod":
        return [doc["spec"]]
    return []


@pytest.mark.parametrize("values", VALUE_SETS)
def test_lint_is_clean(helm, values):
    args = ["lint", "--strict", str(CHART)]
    if values:
        args += ["-f", str(VALUES / values)]
    result = run_helm(helm, *args)
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", VALUE_SETS)
def test_every_document_is_valid_for_oldest_and_newest_kubernetes(
    helm, values, validate_k8s, kube_version
):
    validate_k8s(template(helm, values), kube_version)


@pytest.mark.parametrize("values", VALUE_SETS)
def test_semantic_rules_the_schemas_miss(helm, values):
    docs = documents(template(helm, values))
    for doc in docs:
        name = doc["metadata"]["name"]
        assert DNS_1123.match(name), name
        assert len(name) <= 63, name
        for spec in pod_specs(doc):
            assert spec["restartPolicy"] in {"Never", "OnFailure"}
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
            for container in spec["containers"]:
                context = container["securityContext"]
                assert context["readOnlyRootFilesystem"] is True
                assert context["allowPrivilegeEscalation"] is False
                assert context["capabilities"]["drop"] == ["ALL"]
                secrets = [e for e in container["env"] if "PASSWORD" in e["name"]]
                assert all("valueFrom" in e and "value" not in e for e in secrets)
    for cronjob in by_kind(docs, "CronJob"):
        assert len(cronjob["metadata"]["name"]) <= 52
        check_cron(cronjob["spec"]["schedule"])
        assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"


def test_defaults_give_one_cronjob_per_example_and_the_hook(helm):
    docs = documents(template(helm))
    pipelines = {
        c["metadata"]["labels"]["pipeline-runner/pipeline"] for c in by_kind(docs, "CronJob")
    }
    assert pipelines == EXAMPLES
    kinds = {d["kind"] for d in docs}
    assert {"CronJob", "Job", "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Pod"} <= kinds
    events = next(c for c in by_kind(docs, "CronJob") if c["metadata"]["name"].endswith("-events"))
    spec = events["spec"]
    assert spec["schedule"] == "0 * * * *"
    job = spec["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] == 1800
    container = job["template"]["spec"]["containers"][0]
    assert container["args"] == ["run", "events"]
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "1Gi"},
    }
    assert {"name": "RUNNER_TRIGGER", "value": "schedule"} in container["env"]


def test_the_migration_hook_runs_first_with_its_own_prerequisites(helm):
    docs = documents(template(helm))
    hooks = [d for d in docs if "helm.sh/hook" in d["metadata"].get("annotations", {})]
    migrate = next(d for d in hooks if d["kind"] == "Job")
    annotations = migrate["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
    assert migrate["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "migrate",
        "--wait-ready",
        "300",
    ]
    prerequisites = [
        d for d in hooks if d["kind"] in {"ConfigMap", "ServiceAccount", "Role", "RoleBinding"}
    ]
    assert {d["kind"] for d in prerequisites} == {
        "ConfigMap",
        "ServiceAccount",
        "Role",
        "RoleBinding",
    }
    job_weight = int(annotations["helm.sh/hook-weight"])
    for doc in prerequisites:
        assert doc["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert int(doc["metadata"]["annotations"]["helm.sh/hook-weight"]) < job_weight
    pod = migrate["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == migrate["metadata"]["name"]
    assert pod["containers"][0]["envFrom"][0]["configMapRef"]["name"] == migrate["metadata"]["name"]
    test_pod = next(d for d in hooks if d["kind"] == "Pod")
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert test_pod["spec"]["containers"][0]["args"] == ["check"]


def test_gitops_mode_renders_a_plain_job_and_no_hooks(helm):
    docs = documents(template(helm, "gitops.yaml"))
    assert not [d for d in docs if "helm.sh/hook" in d["metadata"].get("annotations", {})]
    [job] = by_kind(docs, "Job")
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "pipelines-sa"
    assert not by_kind(docs, "Role")


def test_operator_overrides_apply_per_pipeline(helm):
    docs = documents(template(helm, "overrides.yaml"))
    cronjobs = {
        c["metadata"]["labels"]["pipeline-runner/pipeline"]: c for c in by_kind(docs, "CronJob")
    }
    assert set(cronjobs) == EXAMPLES - {"exports"}
    events = cronjobs["events"]["spec"]
    assert events["suspend"] is True
    assert events["schedule"] == "*/5 * * * *"
    pod = events["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}}
    assert pod["containers"][0]["image"] == "registry.example.com/analytics/pipelines:2.0.1"
    assert pod["nodeSelector"] == {"workload": "batch"}
    customers = cronjobs["customers"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert (
        customers["containers"][0]["image"]
        == "registry.example.com/analytics/pipelines:2.0.2-hotfix"
    )
    assert cronjobs["events"]["metadata"]["name"] == "etl-events"
    config = next(d for d in by_kind(docs, "ConfigMap") if not d["metadata"].get("annotations"))
    assert config["data"]["RUNNER_CLUSTER"] == "main"
    assert config["data"]["RUNNER_BATCH_ROWS"] == "200000"
    binding = next(
        d for d in by_kind(docs, "RoleBinding") if d["metadata"]["name"] == "etl-backfill"
    )
    assert binding["subjects"][0]["name"] == "data-engineers"


def test_rendering_is_deterministic(helm):
    assert template(helm, "overrides.yaml") == template(helm, "overrides.yaml")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("clickhouse.password=hunter2", "clickhouse"),
        ("unknown=1", "unknown"),
        ("pipelines.events.schedule=every hour", "schedule"),
        ("cronjob.concurrencyPolicy=Sometimes", "concurrencyPolicy"),
    ],
)
def test_the_values_schema_rejects_bad_values(helm, setting, message):
    result = run_helm(helm, "template", "pipelines", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0
    assert message in result.stderr


def test_every_leaf_of_the_values_schema_is_described():
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node, path):
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, path
            for key, child in node["properties"].items():
                walk(child, f"{path}.{key}")
        else:
            assert node.get("description"), f"{path} has no description"

    walk(schema, "values")


def test_helm_braces_in_a_description_stay_text(helm, tmp_path):
    import shutil

    from runner.deploy.render import render, write
    from runner.pipeline.discovery import Registry

    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "tricky_pipeline.py").write_text(
        "from runner import el\n"
        "pipeline = el('tricky', schedule='@daily', description='uses {{ .Values.secret }} and }}',"
        " extract=[], load=print)\n"
    )
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("pipelines"))
    write(render(Registry(tmp_path / "pipelines"), chart, tmp_path))
    out = run_helm(helm, "template", "x", str(chart)).stdout
    [cronjob] = by_kind(documents(out), "CronJob")
    assert (
        cronjob["metadata"]["annotations"]["pipeline-runner/description"]
        == "uses {{ .Values.secret }} and }}"
    )
