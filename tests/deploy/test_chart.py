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


@pytest.mark.slow
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
    assert job["activeDeadlineSeconds"] == 1800 * 4  # its own window and 3 caught up
    container = job["template"]["spec"]["containers"][0]
    assert container["args"] == ["run", "events"]
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"memory": "1Gi"},
    }
    assert {"name": "RUNNER_TRIGGER", "value": "schedule"} in container["env"]


def test_every_cronjob_has_a_deadline_and_survives_disruptions(helm):
    for cronjob in by_kind(documents(template(helm)), "CronJob"):
        job = cronjob["spec"]["jobTemplate"]["spec"]
        pipeline = cronjob["metadata"]["labels"]["pipeline-runner/pipeline"]
        # the pipeline's own timeout_seconds for each window a run may load, else the default
        assert job["activeDeadlineSeconds"] == (1800 * 4 if pipeline == "events" else 7200)
        assert job["backoffLimit"] == 2
        disruption, final = job["podFailurePolicy"]["rules"]
        assert disruption == {
            "action": "Ignore",
            "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
        }
        assert final["action"] == "FailJob"
        assert final["onExitCodes"] == {
            "containerName": "runner",
            "operator": "In",
            "values": [1, 2, 3, 5],  # README: 4, 75 and 130 are retried, these are not
        }


def test_a_scheduled_pod_learns_its_job_and_cronjob_names(helm):
    for cronjob in by_kind(documents(template(helm)), "CronJob"):
        [container] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["RUNNER_CRONJOB_NAME"]["value"] == cronjob["metadata"]["name"]
        # the Job controller labels every pod with its Job's name, "<cronjob>-<minutes>";
        # the scheduled-timestamp annotation is on the Job only, so it cannot be passed
        assert env["RUNNER_JOB_NAME"]["valueFrom"] == {
            "fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}
        }


def settings_maps(docs):
    """The ConfigMaps holding RUNNER_* settings (the release's and the migration hook's)."""
    found = [c for c in by_kind(docs, "ConfigMap") if "RUNNER_WAREHOUSE_URL" in c["data"]]
    assert found
    return found


def test_metrics_and_alerts_are_wired_only_when_set(helm):
    default = documents(template(helm))
    for config in settings_maps(default):
        assert "RUNNER_PUSHGATEWAY_URL" not in config["data"]
    for doc in default:
        for spec in pod_specs(doc):
            assert "RUNNER_ALERT_WEBHOOK_URL" not in {
                e["name"] for e in spec["containers"][0]["env"]
            }
    configured = documents(template(helm, "overrides.yaml"))
    pushgateway = "http://prometheus-pushgateway.monitoring:9091"
    assert {c["data"]["RUNNER_PUSHGATEWAY_URL"] for c in settings_maps(configured)} == {pushgateway}
    cronjobs = by_kind(configured, "CronJob")
    assert cronjobs
    for cronjob in cronjobs:
        [spec] = pod_specs(cronjob)
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        # the URL is a credential: from the Secret, never a literal value or the ConfigMap
        assert env["RUNNER_ALERT_WEBHOOK_URL"] == {
            "name": "RUNNER_ALERT_WEBHOOK_URL",
            "valueFrom": {"secretKeyRef": {"name": "pipeline-alerts", "key": "url"}},
        }


def test_the_exports_example_writes_to_a_volume(helm):
    exports = next(
        c
        for c in by_kind(documents(template(helm)), "CronJob")
        if c["metadata"]["labels"]["pipeline-runner/pipeline"] == "exports"
    )
    pod = exports["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    # pipelines/exports_pipeline.py writes under EXPORTS_DIR: a writable volume, not /app
    assert env["EXPORTS_DIR"] == "/exports"
    assert "emptyDir" in volumes[mounts["/exports"]]


def test_the_migration_hook_runs_first_with_its_own_prerequisites(helm):
    docs = documents(template(helm))
    hooks = [d for d in docs if "helm.sh/hook" in d["metadata"].get("annotations", {})]
    migrate = next(d for d in hooks if d["kind"] == "Job")
    annotations = migrate["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    # a failed Job stays for inspection until the next attempt (or its TTL)
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
    assert migrate["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "migrate",
        "--wait-ready",
        "120",
    ]
    # Kubernetes stops a stuck migration before Helm's default --timeout (5m) gives up
    assert 120 < migrate["spec"]["activeDeadlineSeconds"] < 300
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
        # removed once every hook succeeded; replaced by the next attempt after a failure
        assert doc["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == (
            "before-hook-creation,hook-succeeded"
        )
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
    [config] = by_kind(docs, "ConfigMap")
    assert config["data"]["RUNNER_SCHEMA_WAIT_SECONDS"] == "300"  # runs wait for the Job


def test_gitops_migration_job_is_named_after_its_pod_template(helm):
    def job_name(*extra):
        [job] = by_kind(documents(template(helm, "gitops.yaml", *extra)), "Job")
        return job["metadata"]["name"]

    name = job_name()
    assert re.fullmatch(r"pipelines-pipeline-runner-migrate-[0-9a-f]{8}", name)
    assert job_name() == name  # the same manifest re-applied: the same Job, nothing to patch
    # a new image is a new pod template, which a Job cannot change: a new Job instead
    assert job_name("--set", "image.tag=2.0.0") != name
    assert job_name("--set", "commonLabels.team=data") != name  # labels are in it too


def test_operator_overrides_apply_per_pipeline(helm):
    docs = documents(template(helm, "overrides.yaml"))
    cronjobs = {
        c["metadata"]["labels"]["pipeline-runner/pipeline"]: c for c in by_kind(docs, "CronJob")
    }
    assert set(cronjobs) == EXAMPLES - {"exports"}
    events = cronjobs["events"]["spec"]
    assert events["suspend"] is True
    assert events["schedule"] == "0 * * * *"  # an override may only repeat it
    pod = events["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}}
    assert pod["containers"][0]["image"] == "registry.example.com/analytics/pipelines:2.0.1"
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


def test_extension_points_apply_globally_and_per_pipeline(helm):
    docs = documents(template(helm, "overrides.yaml"))
    cronjobs = {
        c["metadata"]["labels"]["pipeline-runner/pipeline"]: c for c in by_kind(docs, "CronJob")
    }
    events = cronjobs["events"]["spec"]["jobTemplate"]["spec"]["template"]
    customers = cronjobs["customers"]["spec"]["jobTemplate"]["spec"]["template"]
    [migrate] = [j["spec"]["template"] for j in by_kind(docs, "Job")]
    [check] = by_kind(docs, "Pod")
    check = {"metadata": check["metadata"], "spec": check["spec"]}

    def env(pod):
        return {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}

    def mounts(pod):
        return {m["mountPath"]: m["name"] for m in pod["spec"]["containers"][0]["volumeMounts"]}

    def volumes(pod):
        return {v["name"]: v for v in pod["spec"]["volumes"]}

    for pod in (events, customers, migrate, check):  # global ones: every pod
        spec = pod["spec"]
        assert env(pod)["HTTPS_PROXY"]["value"] == "http://proxy.example.com:3128"
        assert {"secretRef": {"name": "shared-source-credentials"}} in (
            spec["containers"][0]["envFrom"]
        )
        assert mounts(pod)["/reference"] == "reference-data"
        assert mounts(pod)["/etc/pipeline-runner/ca"] == "ca-bundle"
        assert volumes(pod)["ca-bundle"]["configMap"] == {
            "name": "corporate-ca",
            "items": [{"key": "bundle.pem", "path": "ca.crt"}],
        }
        assert pod["metadata"]["labels"]["team"] == "data"
        assert pod["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
        assert {"key": "batch", "operator": "Exists", "effect": "NoSchedule"} in (
            spec["tolerations"]
        )
    # the pipeline's own: after (or merged over, or replacing) the global ones
    spec = events["spec"]
    assert spec["priorityClassName"] == "batch-high"
    assert customers["spec"]["priorityClassName"] == "batch-low"
    assert spec["nodeSelector"] == {"workload": "batch", "disk": "ssd"}
    assert customers["spec"]["nodeSelector"] == {"workload": "batch"}
    assert [t["key"] for t in spec["tolerations"]] == ["batch", "events-only"]
    assert list(spec["affinity"]) == ["nodeAffinity"]  # replaces the global one
    assert list(customers["spec"]["affinity"]) == ["podAntiAffinity"]
    assert events["metadata"]["labels"]["cost-center"] == "42"
    assert events["metadata"]["labels"]["pipeline-runner/pipeline"] == "events"
    assert events["metadata"]["annotations"]["example.com/owner"] == "events-team"
    assert env(events)["SHOP_API_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "shop-api"
    assert "SHOP_API_TOKEN" not in env(customers)
    envfrom = events["spec"]["containers"][0]["envFrom"]
    assert envfrom[-2:] == [
        {"secretRef": {"name": "shared-source-credentials"}},
        {"secretRef": {"name": "events-source-credentials"}},
    ]
    assert mounts(events)["/spool"] == "spool"
    assert "spool" not in volumes(customers)
    assert volumes(events)["tmp"]["emptyDir"]["sizeLimit"] == "10Gi"
    assert volumes(customers)["tmp"]["emptyDir"]["sizeLimit"] == "4Gi"
    config = next(d for d in by_kind(docs, "ConfigMap") if not d["metadata"].get("annotations"))
    assert config["data"]["RUNNER_TLS_CA_CERT"] == "/etc/pipeline-runner/ca/ca.crt"


def test_an_image_digest_pins_the_image_but_stays_out_of_labels(helm):
    digest = "sha256:" + "ab" * 32
    docs = documents(template(helm, "overrides.yaml", "--set", f"image.digest={digest}"))
    images = {}
    for cronjob in by_kind(docs, "CronJob"):
        pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]
        images[cronjob["metadata"]["labels"]["pipeline-runner/pipeline"]] = pod["spec"][
            "containers"
        ][0]["image"]
        for labels in (cronjob["metadata"]["labels"], pod["metadata"]["labels"]):
            assert all("sha256" not in str(v) for v in labels.values())
    assert images["events"] == f"registry.example.com/analytics/pipelines@{digest}"
    # a pipeline's own tag without a digest of its own does not inherit the global digest
    assert images["customers"] == "registry.example.com/analytics/pipelines:2.0.2-hotfix"
    assert images["daily_revenue"] == "registry.example.com/analytics/pipelines@sha256:" + (
        "0123456789abcdef" * 4
    )


def test_a_ca_bundle_from_a_secret_and_from_both_is_refused(helm):
    docs = documents(template(helm, None, "--set", "clickhouse.caBundle.secretName=ca"))
    [config] = [d for d in by_kind(docs, "ConfigMap") if not d["metadata"].get("annotations")]
    assert config["data"]["RUNNER_TLS_CA_CERT"] == "/etc/pipeline-runner/ca/ca.crt"
    [job] = by_kind(docs, "Job")
    [volume] = [v for v in job["spec"]["template"]["spec"]["volumes"] if v["name"] == "ca-bundle"]
    assert volume["secret"] == {"secretName": "ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    both = run_helm(
        helm,
        *("template", "x", str(CHART), "--set", "clickhouse.caBundle.secretName=a"),
        *("--set", "clickhouse.caBundle.configMapName=b"),
        check=False,
    )
    assert both.returncode != 0
    assert "set secretName or configMapName, not both" in both.stderr


def test_rendering_is_deterministic(helm):
    assert template(helm, "overrides.yaml") == template(helm, "overrides.yaml")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("clickhouse.password=hunter2", "clickhouse"),
        ("unknown=1", "unknown"),
        ("pipelines.events.schedule=every hour", "schedule"),
        ("cronjob.concurrencyPolicy=Sometimes", "concurrencyPolicy"),
        ("pipelines.events.colour=red", "colour"),
        ("pipelines.evnets.suspend=true", "evnets"),  # not a pipeline of this project
        ("extraEnv[0].name=API_TOKEN,extraEnv[0].value=hunter2", "extraEnv"),
        (
            "pipelines.events.extraEnv[0].name=DB_PASSWORD,pipelines.events.extraEnv[0].value=x",
            "extraEnv",
        ),
        ("podLabels.app\\.kubernetes\\.io/name=mine", "podLabels"),
        ("extraVolumes[0].name=tmp,extraVolumes[0].emptyDir.medium=Memory", "extraVolumes"),
        ("image.digest=latest", "digest"),
        ("tmpSizeLimit=lots", "tmpSizeLimit"),
        ("settings.RUNNER_SCHEMA_WAIT_SECONDS=9", "settings"),
        (
            "settings.RUNNER_ALERT_WEBHOOK_URL=https://hooks.example.com/x",
            "RUNNER_ALERT_WEBHOOK_URL",
        ),
        ("settings.RUNNER_PUSHGATEWAY_URL=http://pg:9091", "RUNNER_PUSHGATEWAY_URL"),
        ("metrics.pushgatewayUrl=http://user:pw@pg:9091", "pushgatewayUrl"),
        ("alerts.webhook.url=https://hooks.example.com/x", "webhook"),
        ("fullnameOverride=Not_A_Name", "fullnameOverride"),
        ("migrations.waitReadySeconds=300", "must be less than migrations.activeDeadlineSeconds"),
    ],
)
def test_the_values_schema_rejects_bad_values(helm, setting, message):
    result = run_helm(helm, "template", "pipelines", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0
    assert message in result.stderr


def test_every_leaf_of_the_values_schema_is_described():
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())

    def resolve(node):
        if "$ref" in node:
            return schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
        for part in node.get("allOf", []):
            if "$ref" in part:
                node = node | resolve(schema["definitions"][part["$ref"].rsplit("/", 1)[1]])
        return node

    def walk(node, path):
        node = resolve(node)
        assert node.get("description"), f"{path} has no description"
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, path
            for key, child in node["properties"].items():
                walk(child, f"{path}.{key}")
        if node.get("type") == "array":
            walk(node["items"], f"{path}[]")

    walk(schema | {"description": "values"}, "values")
    # every pipeline of the project, and only those, may be configured
    pipelines = schema["properties"]["pipelines"]
    assert set(pipelines["properties"]) == EXAMPLES
    assert pipelines["additionalProperties"] is False


def test_helm_braces_in_a_description_stay_text(helm, tmp_path, chart_copy):
    from runner.deploy.render import render, write
    from runner.pipeline.discovery import Registry

    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "tricky_pipeline.py").write_text(
        "from runner import el\n"
        "pipeline = el('tricky', schedule='@daily', description='uses {{ .Values.secret }} and }}',"
        " extract=[], load=print)\n"
    )
    chart = chart_copy(tmp_path / "chart")
    write(render(Registry(tmp_path / "pipelines"), chart, tmp_path))
    out = run_helm(helm, "template", "x", str(chart)).stdout
    [cronjob] = by_kind(documents(out), "CronJob")
    assert (
        cronjob["metadata"]["annotations"]["pipeline-runner/description"]
        == "uses {{ .Values.secret }} and }}"
    )
