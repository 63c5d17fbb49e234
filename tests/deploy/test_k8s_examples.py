"""The example manifests and walkthrough in k8s/: valid for every supported Kubernetes,
consistent with each other and with the chart the walkthrough installs."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
CHART = REPO / "charts" / "pipeline-runner"
SECRET = "clickhouse-credentials"


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc is not None]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [doc for doc in docs if doc["kind"] == kind]
    return found


@pytest.mark.parametrize("name", ["clickhouse.yaml", "backfill-rbac.yaml"])
def test_manifests_are_valid(validate_k8s, kube_version: str, name: str) -> None:
    validate_k8s((K8S / name).read_text(), kube_version)


@pytest.mark.parametrize("name", ["clickhouse.yaml", "backfill-rbac.yaml"])
def test_manifests_are_namespace_agnostic(name: str) -> None:
    for doc in documents(name):
        assert "namespace" not in doc["metadata"], doc["metadata"]["name"]


def test_kind_config() -> None:
    [config] = documents("kind-config.yaml")
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["kind"] == "Cluster"
    assert [node["role"] for node in config["nodes"]] == ["control-plane", "worker"]
    assert "kind load docker-image pipeline-runner:dev" in (K8S / "kind-config.yaml").read_text()


def test_clickhouse_wiring() -> None:
    docs = documents("clickhouse.yaml")
    service, statefulset = by_kind(docs, "Service"), by_kind(docs, "StatefulSet")
    pod = statefulset["spec"]["template"]
    [container] = pod["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}

    # The name the chart's default clickhouse.url uses, on the HTTP port.
    assert service["metadata"]["name"] == "clickhouse"
    [service_port] = service["spec"]["ports"]
    assert service_port["port"] == 8123
    assert ports[service_port["targetPort"]] == 8123
    labels = pod["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert statefulset["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert statefulset["spec"]["serviceName"] == "clickhouse"

    image, _, tag = container["image"].rpartition(":")
    assert image == "clickhouse/clickhouse-server"
    assert re.fullmatch(r"\d+\.\d+(\.\d+)*", tag), f"pin a version tag, not {tag!r}"

    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == "/ping"
    assert ports[probe["port"]] == 8123
    assert container["resources"]["requests"].keys() >= {"cpu", "memory"}

    env = {item["name"]: item for item in container["env"]}
    for variable, key in {"CLICKHOUSE_USER": "username", "CLICKHOUSE_PASSWORD": "password"}.items():
        assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": key}
    assert env["CLICKHOUSE_DB"]["value"] == "analytics"

    [claim] = statefulset["spec"]["volumeClaimTemplates"]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/var/lib/clickhouse"
    assert claim["spec"]["resources"]["requests"]["storage"]


def test_backfill_rbac_grants_exactly_manual_runs() -> None:
    docs = documents("backfill-rbac.yaml")
    role, binding = by_kind(docs, "Role"), by_kind(docs, "RoleBinding")
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert granted == {
        ("batch", "cronjobs"): {"get", "list"},
        ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
        ("", "pods"): {"get", "list", "watch"},
        ("", "pods/log"): {"get"},
    }
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "Group", "name": "data-engineers", "apiGroup": "rbac.authorization.k8s.io"}
    ]


def walkthrough_commands() -> list[list[str]]:
    """Every shell command in the fenced blocks of k8s/README.md, continuations joined."""
    text = (K8S / "README.md").read_text()
    commands: list[list[str]] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            if line.strip():
                commands.append(shlex.split(line, comments=True))
    return commands


def test_walkthrough_covers_cluster_to_first_run() -> None:
    commands = [" ".join(command) for command in walkthrough_commands()]
    expected_in_order = [
        "kind create cluster --name pipelines --config k8s/kind-config.yaml",
        "docker build -t pipeline-runner:dev .",
        "kind load docker-image pipeline-runner:dev --name pipelines",
        "kubectl create namespace pipelines",
        f"kubectl -n pipelines create secret generic {SECRET}",
        "kubectl -n pipelines apply -f k8s/clickhouse.yaml",
        "helm upgrade --install pipelines charts/pipeline-runner -n pipelines",
        "kubectl -n pipelines create job --from=cronjob/",
        "kubectl -n pipelines logs job/first-run",
        "helm test pipelines -n pipelines",
    ]
    position = 0
    for step in expected_in_order:
        found = [i for i, command in enumerate(commands) if command.startswith(step)]
        assert found, f"k8s/README.md lacks: {step}"
        assert found[0] >= position, f"k8s/README.md runs {step!r} too early"
        position = found[0]


def test_walkthrough_install_renders_the_cronjob_it_then_runs(helm3: Path, validate_k8s) -> None:
    """The README's exact `helm upgrade --install` values render, and name the CronJob used."""
    commands = walkthrough_commands()
    [install] = [c for c in commands if c[:3] == ["helm", "upgrade", "--install"]]
    [create_job] = [c for c in commands if c[:5] == ["kubectl", "-n", "pipelines", "create", "job"]]
    release, chart = install[3], install[4]
    options = [arg for arg in install[5:] if arg != "--wait"]
    sets = dict(options[i + 1].split("=", 1) for i, arg in enumerate(options) if arg == "--set")
    assert sets == {
        "image.repository": "pipeline-runner",
        "image.tag": "dev",
        "clickhouse.url": "http://clickhouse:8123/analytics",
        "clickhouse.existingSecret": SECRET,
    }

    rendered = subprocess.run(
        [str(helm3), "template", release, str(REPO / chart), *options],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert rendered.returncode == 0, rendered.stderr
    validate_k8s(rendered.stdout, "1.30")
    docs = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    cronjobs = {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "CronJob"}
    source = next(arg for arg in create_job if arg.startswith("--from=cronjob/"))
    cronjob = cronjobs.get(source.removeprefix("--from=cronjob/"))
    assert cronjob is not None, f"{source} is not one of {sorted(cronjobs)}"

    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "pipeline-runner:dev"
    secret_refs = {
        item["valueFrom"]["secretKeyRef"]["key"]
        for item in container.get("env", [])
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    assert secret_refs <= {"username", "password"}
    assert secret_refs, "the run pod takes no credentials from the Secret"
    assert all(
        item["valueFrom"]["secretKeyRef"]["name"] == SECRET
        for item in container.get("env", [])
        if "secretKeyRef" in item.get("valueFrom", {})
    )


def test_prometheus_rules_use_only_exported_metrics() -> None:
    import re

    from runner.ops.metrics import metric_names

    [rule] = documents("prometheus-rules.yaml")
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    [group] = rule["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert {"PipelineRunFailed", "PipelineRunMissing", "PipelineDataStale"} <= set(alerts)
    exported = set(metric_names())
    for name, alert in alerts.items():
        used = set(re.findall(r"\bpipeline_runner_[a-z_]+", alert["expr"]))
        assert used, name
        assert used <= exported, f"{name} uses {used - exported}"
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert "{{ $labels.pipeline }}" in alert["annotations"]["summary"]
    # a missing run is judged against the schedule, from scheduled runs only
    missing = alerts["PipelineRunMissing"]["expr"]
    assert 'last_success_timestamp_seconds{trigger="schedule"}' in missing
    assert "schedule_interval_seconds" in missing
