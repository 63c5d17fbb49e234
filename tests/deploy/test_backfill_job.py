"""Backfill Indexed Jobs built from the real chart's CronJob, validated against the official
schemas, and created through the real ``kubernetes`` client against the stand-in API server."""

import copy
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes import client

from runner.deploy.backfill_job import (
    MAX_ENV_STRING_BYTES,
    WINDOW_DEADLINE_ANNOTATION,
    WINDOWS_ENV,
    build_backfill_job,
    create_job,
    cronjob_from_manifest,
    read_cronjob,
    to_yaml,
    window_for_index,
)
from runner.errors import ConfigError, NotReadyError
from runner.pipeline.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from k8s_apiserver import running_api

CHART = Path(__file__).resolve().parents[2] / "charts" / "pipeline-runner"
CRONJOB = "pipelines-pipeline-runner-events"
BACKFILL_ID = "0123abcd"
DAY0 = datetime(2026, 1, 1, tzinfo=UTC)
DAILY = [Window(DAY0 + timedelta(days=i), DAY0 + timedelta(days=i + 1)) for i in range(30)]
MISSING = object()


@pytest.fixture(scope="module")
def manifest(helm3, tmp_path_factory):
    result = subprocess.run(
        [str(helm3), "template", "pipelines", str(CHART), "-n", "etl"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    path = tmp_path_factory.mktemp("chart") / "rendered.yaml"
    path.write_text(result.stdout)
    return path


@pytest.fixture(scope="module")
def events(manifest):
    return cronjob_from_manifest(manifest, "events")


@pytest.fixture
def api():
    with running_api() as server:
        configuration = client.Configuration()
        configuration.host = server.url
        yield server, client.BatchV1Api(client.ApiClient(configuration))


def build(cronjob, windows=DAILY, **kwargs):
    arguments = {"pipeline": "events", "parallelism": 4, "backfill_id": BACKFILL_ID} | kwargs
    return build_backfill_job(cronjob, windows=windows, **arguments)


def runner_container(job):
    return next(c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == "runner")


def pod_environment(job):
    """What the pod of an index sees: the literal env values (Kubernetes adds the index)."""
    return {e["name"]: e["value"] for e in runner_container(job)["env"] if "value" in e}


def flatten(value, prefix=""):
    """Every leaf of a JSON-like value by dotted path (list items by position)."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return {prefix: value}
    leaves = {}
    for key, item in items:
        leaves |= flatten(item, f"{prefix}.{key}" if prefix else str(key))
    return leaves


def minimal_cronjob(**metadata):
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "etl-events", "labels": {"pipeline-runner/pipeline": "events"}}
        | metadata,
        "spec": {
            "schedule": "@daily",
            "jobTemplate": {
                "metadata": {"annotations": {"team": "data"}},
                "spec": {
                    "backoffLimit": 2,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {"name": "sidecar", "image": "proxy:1"},
                                {"name": "runner", "image": "runner:1", "args": ["run", "events"]},
                            ],
                        }
                    },
                },
            },
        },
    }


# -- the Job from the real chart -------------------------------------------------------


def test_job_from_the_chart_is_valid_for_oldest_and_newest_kubernetes(
    events, validate_k8s, kube_version
):
    job = build(events, max_failed_indexes=3)
    # strict validation: backoffLimitPerIndex, maxFailedIndexes and FailIndex are in the
    # official 1.30 schema too (beta since 1.29, GA in 1.33), so no per-version variant
    validate_k8s(to_yaml(job), kube_version)
    misspelt = copy.deepcopy(job)
    misspelt["spec"]["backoffLimitPerIndexes"] = 2
    with pytest.raises(AssertionError, match="backoffLimitPerIndexes"):
        validate_k8s(to_yaml(misspelt), kube_version)


def test_only_the_documented_fields_differ_from_the_cronjob_template(events):
    template = events["spec"]["jobTemplate"]
    job = build(events)
    before, after = flatten(template["spec"]), flatten(job["spec"])
    changed = {
        path
        for path in before.keys() | after.keys()
        if before.get(path, MISSING) != after.get(path, MISSING)
        and not path.startswith("podFailurePolicy.")
        and not path.startswith("template.metadata.labels.")
    }
    env = "template.spec.containers.0.env"
    assert runner_container(template)["env"][0]["name"] == ("RUNNER_TRIGGER")
    assert changed == {
        "backoffLimit",  # removed: it would cap all indexes' failures together
        "activeDeadlineSeconds",  # one run's deadline x waves x tries per window
        "completionMode",
        "completions",
        "parallelism",
        "backoffLimitPerIndex",
        "template.spec.containers.0.args.0",
        "template.spec.containers.0.args.1",
        "template.spec.containers.0.args.2",
        f"{env}.0.value",  # RUNNER_TRIGGER, replaced in place
        f"{env}.9.name",  # after the CronJob's own (RUNNER_CRONJOB_NAME, RUNNER_JOB_NAME)
        f"{env}.9.value",
        f"{env}.10.name",
        f"{env}.10.value",
    }
    disruption = {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    assert template["spec"]["podFailurePolicy"]["rules"] == [
        disruption,
        {
            "action": "FailJob",
            "onExitCodes": {"containerName": "runner", "operator": "In", "values": [1, 2, 3, 5]},
        },
    ]
    # a window whose data fails (1) or that another run holds (5) fails its index only;
    # a usage or configuration error (2, 3) would fail every window alike
    assert job["spec"]["podFailurePolicy"] == {
        "rules": [
            disruption,
            {
                "action": "FailIndex",
                "onExitCodes": {"containerName": "runner", "operator": "In", "values": [1, 5]},
            },
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "runner", "operator": "In", "values": [2, 3]},
            },
        ]
    }
    # the CronJob's Job covers its window and 3 caught up; a backfill pod runs one window:
    # 30 windows, 4 at a time: 8 waves of the pipeline's 1800 s, 3 tries per window
    assert template["spec"]["activeDeadlineSeconds"] == 1800 * 4
    assert events["metadata"]["annotations"][WINDOW_DEADLINE_ANNOTATION] == "1800"
    assert job["spec"]["activeDeadlineSeconds"] == 1800 * 8 * 3
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert pod_labels == {
        k: v
        for k, v in template["spec"]["template"]["metadata"]["labels"].items()
        if k != "helm.sh/chart"
    } | {
        "app.kubernetes.io/managed-by": "pipeline-runner",
        "pipeline-runner/backfill-id": BACKFILL_ID,
    }
    assert job["spec"]["ttlSecondsAfterFinished"] == template["spec"]["ttlSecondsAfterFinished"]
    assert (job["spec"]["completions"], job["spec"]["parallelism"]) == (30, 4)
    assert job["spec"]["backoffLimitPerIndex"] == 2
    assert "maxFailedIndexes" not in job["spec"]
    # what kubectl create job --from copies, copied unchanged
    was, now = template["spec"]["template"]["spec"], job["spec"]["template"]["spec"]
    for field in ("serviceAccountName", "securityContext", "volumes", "restartPolicy"):
        assert now[field] == was[field]
    for field in ("image", "securityContext", "resources", "envFrom", "volumeMounts"):
        assert runner_container(job)[field] == runner_container(template)[field]
    secrets = [e for e in runner_container(job)["env"] if "secretKeyRef" in str(e)]
    assert [e["name"] for e in secrets] == ["RUNNER_CLICKHOUSE_USER", "RUNNER_CLICKHOUSE_PASSWORD"]
    assert secrets == [e for e in runner_container(template)["env"] if e in secrets]
    assert runner_container(job)["args"] == ["backfill", "index", "events"]
    assert events["spec"]["jobTemplate"] == template  # the CronJob itself is left alone
    assert runner_container(template)["args"] == ["run", "events"]


def test_job_metadata_follows_kubectl_plus_the_backfill(events):
    job = build(events)
    meta = job["metadata"]
    assert meta["name"] == f"{CRONJOB}-bf-{BACKFILL_ID}"
    template_labels = events["spec"]["jobTemplate"]["metadata"]["labels"]
    assert template_labels["app.kubernetes.io/managed-by"] == "Helm"
    assert "helm.sh/chart" in template_labels
    # not Helm's object: tools tracking Helm's releases must not adopt or prune it
    assert meta["labels"] == {k: v for k, v in template_labels.items() if k != "helm.sh/chart"} | {
        "app.kubernetes.io/managed-by": "pipeline-runner",
        "pipeline-runner/backfill-id": BACKFILL_ID,
        "pipeline-runner/pipeline": "events",
        "app.kubernetes.io/component": "backfill",
    }
    assert meta["annotations"] == {
        "cronjob.kubernetes.io/instantiate": "manual",
        "pipeline-runner/backfill-start": "2026-01-01T00:00:00+00:00",
        "pipeline-runner/backfill-end": "2026-01-31T00:00:00+00:00",
        "pipeline-runner/backfill-windows": "30",
    }
    assert "ownerReferences" not in meta
    assert "namespace" not in meta  # a rendered manifest's Job follows -n


def test_every_index_runs_its_own_window(events):
    job = build(events)
    names = [e["name"] for e in runner_container(job)["env"]]
    assert len(names) == len(set(names))
    environ = pod_environment(job)
    assert environ["RUNNER_TRIGGER"] == "backfill"
    assert environ["RUNNER_BACKFILL_ID"] == BACKFILL_ID
    assert " " not in environ[WINDOWS_ENV]  # compact JSON
    for index, window in enumerate(DAILY):
        got = window_for_index(environ | {"JOB_COMPLETION_INDEX": str(index)})
        assert got == (window.start.isoformat(), window.end.isoformat())


ZONES = st.sampled_from([UTC, ZoneInfo("Europe/Berlin"), ZoneInfo("America/St_Johns")])
WINDOWS = st.lists(
    st.builds(
        lambda start, length: Window(start, start + length),
        st.datetimes(
            min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=ZONES
        ),
        st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=400)),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(windows=WINDOWS, parallelism=st.integers(1, 50))
def test_any_windows_round_trip_through_the_pod_environment(windows, parallelism):
    job = build(minimal_cronjob(), windows=windows, parallelism=parallelism)
    environ = pod_environment(job)
    assert job["spec"]["completions"] == len(windows)
    for index, window in enumerate(windows):
        start, end = window_for_index(environ | {"JOB_COMPLETION_INDEX": str(index)})
        assert (datetime.fromisoformat(start), datetime.fromisoformat(end)) == (
            window.start,
            window.end,
        )
    with pytest.raises(ConfigError, match="out of range"):
        window_for_index(environ | {"JOB_COMPLETION_INDEX": str(len(windows))})
    annotations = job["metadata"]["annotations"]
    assert (
        annotations["pipeline-runner/backfill-start"] == min(w.start for w in windows).isoformat()
    )
    assert annotations["pipeline-runner/backfill-end"] == max(w.end for w in windows).isoformat()


def test_a_live_cronjob_does_not_own_its_backfill():
    cronjob = minimal_cronjob(namespace="etl", uid="1b4e28ba-2fa1-11d2-883f-0016d3cca427")
    cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][1]["env"] = [
        {"name": "A", "value": "1"},
        {"name": "RUNNER_TRIGGER", "value": "schedule"},
        {"name": "RUNNER_TRIGGER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    job = build(cronjob)
    assert job["metadata"]["namespace"] == "etl"
    # owned by the CronJob, it would count against the CronJob's history limits, and the
    # CronJob controller would delete it after a few scheduled runs; its TTL removes it
    assert "ownerReferences" not in job["metadata"]
    # without a deadline of its own in the CronJob: the chart's default per run
    assert job["spec"]["activeDeadlineSeconds"] == 7200 * 8 * 3
    assert job["metadata"]["annotations"]["team"] == "data"  # jobTemplate annotations, as kubectl
    assert "backoffLimit" not in job["spec"]
    sidecar, runner = job["spec"]["template"]["spec"]["containers"]
    assert sidecar == {"name": "sidecar", "image": "proxy:1"}
    assert runner["args"] == ["backfill", "index", "events"]
    assert runner["env"][:3] == [
        {"name": "A", "value": "1"},
        {"name": "RUNNER_TRIGGER", "value": "backfill"},  # replaced once, in place
        {"name": "RUNNER_BACKFILL_ID", "value": BACKFILL_ID},
    ]
    assert [e["name"] for e in runner["env"][3:]] == ["RUNNER_BACKFILL_WINDOWS"]


def test_a_long_cronjob_name_is_cut_before_the_backfill_id():
    long_name = "pipelines-pipeline-runner-daily-revenue-rollup-bys-x"
    assert len(long_name) == 52  # the chart's CronJob names are at most 52 characters
    assert long_name[50] == "-"  # the cut (63 - len("-bf-0123abcd") = 51) ends on a dash
    name = build(minimal_cronjob(name=long_name))["metadata"]["name"]
    assert name == long_name[:50] + f"-bf-{BACKFILL_ID}"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
    assert len(name) <= 63


# -- podFailurePolicy ------------------------------------------------------------------


def exits(operator, values, container="runner"):
    codes = {"containerName": container} if container else {}
    return codes | {"operator": operator, "values": values}


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        pytest.param(
            [{"action": "FailJob", "onExitCodes": exits("In", [5])}],
            [{"action": "FailIndex", "onExitCodes": exits("In", [5])}],
            id="only-5",
        ),
        pytest.param(
            [{"action": "FailJob", "onExitCodes": exits("NotIn", [0, 1], None)}],
            [
                {"action": "FailIndex", "onExitCodes": exits("In", [5], None)},
                {"action": "FailJob", "onExitCodes": exits("NotIn", [0, 1], None)},
            ],
            id="not-in-catches-5",
        ),
        pytest.param(
            [{"action": "FailJob", "onExitCodes": exits("NotIn", [1, 5])}],
            [{"action": "FailJob", "onExitCodes": exits("NotIn", [1, 5])}],
            id="not-in-spares-1-and-5",
        ),
        pytest.param(
            [{"action": "FailJob", "onExitCodes": exits("NotIn", [5])}],
            [
                {"action": "FailIndex", "onExitCodes": exits("In", [1])},
                {"action": "FailJob", "onExitCodes": exits("NotIn", [5])},
            ],
            id="not-in-catches-1",
        ),
        pytest.param(
            [{"action": "FailJob", "onExitCodes": exits("In", [1, 2, 3, 5])}],
            [
                {"action": "FailIndex", "onExitCodes": exits("In", [1, 5])},
                {"action": "FailJob", "onExitCodes": exits("In", [2, 3])},
            ],
            id="the-chart's-rule",
        ),
        pytest.param(
            [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                {"action": "Count", "onExitCodes": exits("In", [5])},
                {"action": "FailJob", "onExitCodes": exits("In", [3, 5])},
            ],
            [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                {"action": "Count", "onExitCodes": exits("In", [5])},  # first match wins
                {"action": "FailIndex", "onExitCodes": exits("In", [5])},
                {"action": "FailJob", "onExitCodes": exits("In", [3])},
            ],
            id="earlier-rules-keep-precedence",
        ),
    ],
)
def test_exits_1_and_5_fail_only_their_index(rules, expected):
    cronjob = minimal_cronjob()
    cronjob["spec"]["jobTemplate"]["spec"]["podFailurePolicy"] = {"rules": rules}
    assert build(cronjob)["spec"]["podFailurePolicy"] == {"rules": expected}
    assert cronjob["spec"]["jobTemplate"]["spec"]["podFailurePolicy"] == {"rules": rules}


def test_an_unknown_pod_failure_action_is_refused():
    cronjob = minimal_cronjob()
    rule = {"action": "RestartPod", "onExitCodes": exits("In", [1])}
    cronjob["spec"]["jobTemplate"]["spec"]["podFailurePolicy"] = {"rules": [rule]}
    with pytest.raises(ConfigError, match="rule 1 has action 'RestartPod'"):
        build(cronjob)


# -- refusals --------------------------------------------------------------------------


def test_refusals_name_what_is_wrong():
    no_runner = minimal_cronjob()
    no_runner["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"].pop()
    on_failure = minimal_cronjob()
    on_failure["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    cases = [
        ({"cronjob": no_runner}, "no container named 'runner' in its pod (found: sidecar)"),
        ({"cronjob": on_failure}, "restartPolicy Never"),
        ({"windows": []}, "at least one window"),
        ({"parallelism": 0}, "parallelism must be between 1"),
        ({"backfill_id": "0123ABCD"}, "8 lower-case hex"),
        ({"backfill_id": "0123abc"}, "8 lower-case hex"),
        ({"backfill_id": "0123abcde"}, "8 lower-case hex"),
        ({"max_failed_indexes": 31}, "between 0 and the number of windows"),
        ({"backoff_limit_per_index": -1}, "0 or more"),
        ({"pipeline": "orders"}, "CronJob etl-events belongs to pipeline 'events', not 'orders'"),
        ({"pipeline": "bad name"}, "not a valid Kubernetes label value"),
        ({"cronjob": {"kind": "CronJob", "metadata": {}}}, "CronJob without metadata.name"),
        ({"cronjob": {"metadata": {"name": "x"}, "spec": {}}}, "CronJob x has no jobTemplate"),
    ]
    for change, message in cases:
        arguments = {"cronjob": minimal_cronjob()} | change
        with pytest.raises(ConfigError, match=re.escape(message)):
            build(**arguments)


def test_too_many_windows_are_refused_with_how_many_fit():
    hourly = [Window(DAY0 + timedelta(hours=i), DAY0 + timedelta(hours=i + 1)) for i in range(5000)]
    with pytest.raises(ConfigError, match=r"only (\d+) of them fit: use a coarser --step") as info:
        build(minimal_cronjob(), windows=hourly)
    fit = int(info.value.args[0].split("only ")[1].split()[0])
    assert 2000 < fit < 5000
    value = pod_environment(build(minimal_cronjob(), windows=hourly[:fit]))[WINDOWS_ENV]
    assert len(f"{WINDOWS_ENV}={value}".encode()) + 1 <= MAX_ENV_STRING_BYTES
    with pytest.raises(ConfigError, match="do not fit"):
        build(minimal_cronjob(), windows=hourly[: fit + 1])


def test_the_environment_limit_is_the_kernels():
    """One env string of MAX_ENV_STRING_BYTES (with its NUL) starts; one byte more cannot."""
    limit = MAX_ENV_STRING_BYTES - len(WINDOWS_ENV) - 2
    ok = subprocess.run(["true"], env={WINDOWS_ENV: "x" * limit}, check=False)
    assert ok.returncode == 0
    if os.sysconf("SC_PAGE_SIZE") == 4096:  # MAX_ARG_STRLEN is 32 pages
        with pytest.raises(OSError, match="Argument list too long"):
            subprocess.run(["true"], env={WINDOWS_ENV: "x" * (limit + 1)}, check=False)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "JOB_COMPLETION_INDEX is not set"),
        ({"JOB_COMPLETION_INDEX": "-1"}, "is not a completion index"),
        ({"JOB_COMPLETION_INDEX": " 1"}, "is not a completion index"),
        ({"JOB_COMPLETION_INDEX": "1.0"}, "is not a completion index"),
        ({"JOB_COMPLETION_INDEX": "0"}, "RUNNER_BACKFILL_WINDOWS is not set"),
        ({"JOB_COMPLETION_INDEX": "0", WINDOWS_ENV: "[[1,"}, "is not JSON"),
        ({"JOB_COMPLETION_INDEX": "0", WINDOWS_ENV: '{"a": 1}'}, "must be a JSON list"),
        ({"JOB_COMPLETION_INDEX": "1", WINDOWS_ENV: '[["a","b"]]'}, "out of range"),
        ({"JOB_COMPLETION_INDEX": "0", WINDOWS_ENV: '[["a"]]'}, "not a \\[start, end\\] pair"),
        ({"JOB_COMPLETION_INDEX": "0", WINDOWS_ENV: "[[1, 2]]"}, "not a \\[start, end\\] pair"),
    ],
)
def test_window_for_index_refuses_a_bad_environment(environ, message):
    with pytest.raises(ConfigError, match=message):
        window_for_index(environ)


# -- manifests and YAML ----------------------------------------------------------------


def test_manifest_lookup_errors_name_the_file(manifest, tmp_path):
    with pytest.raises(ConfigError, match=r"no CronJob labelled pipeline-runner/pipeline=nope"):
        cronjob_from_manifest(manifest, "nope")
    with pytest.raises(ConfigError, match=r"CronJobs there are for: customers, daily_revenue"):
        cronjob_from_manifest(manifest, "nope")
    twice = tmp_path / "twice.yaml"
    twice.write_text(manifest.read_text() + "\n---\n" + manifest.read_text())
    with pytest.raises(ConfigError, match=rf"{twice}: 2 CronJobs are labelled"):
        cronjob_from_manifest(twice, "events")
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: CronJob\nmetadata: {name: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"{broken}:\d+: not a YAML manifest"):
        cronjob_from_manifest(broken, "events")
    with pytest.raises(ConfigError, match=r"cannot read the manifest"):
        cronjob_from_manifest(tmp_path / "absent.yaml", "events")
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not a YAML manifest"):
        cronjob_from_manifest(binary, "events")


def test_a_kubectl_list_is_unpacked(tmp_path, events):
    listed = tmp_path / "list.yaml"
    other = minimal_cronjob()
    other["metadata"]["labels"]["pipeline-runner/pipeline"] = "orders"
    listed.write_text(
        yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [other, events]})
    )
    assert cronjob_from_manifest(listed, "events") == events


def test_yaml_is_stable_and_round_trips(events):
    job = build(events)
    text = to_yaml(job)
    assert text == to_yaml(copy.deepcopy(job))
    assert text.startswith("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: ")
    assert yaml.safe_load(text) == job
    assert "pipeline-runner/backfill-windows: '30'" in text  # annotations stay strings


# -- against the API server ------------------------------------------------------------


def live(cronjob):
    """The CronJob as the API server holds it after `helm install -n etl`."""
    obj = copy.deepcopy(cronjob)
    obj["metadata"] |= {
        "namespace": "etl",
        "uid": "6f1c1d8e-3a51-4e8c-9d3c-0a2d3c4b5e6f",
        "resourceVersion": "4711",
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "generation": 1,
    }
    obj["status"] = {"lastScheduleTime": "2026-02-01T10:00:00Z"}
    return obj


def test_apply_creates_the_job_next_to_the_live_cronjob(
    api, events, validate_k8s, newest_kube_version
):
    server, batch = api
    server.cronjobs["etl"] = [live(events)]
    cronjob = read_cronjob("etl", CRONJOB, api=batch)
    # the same dict shape as the rendered manifest: one builder serves both
    assert cronjob["spec"]["jobTemplate"] == events["spec"]["jobTemplate"]
    assert cronjob["metadata"]["uid"] == "6f1c1d8e-3a51-4e8c-9d3c-0a2d3c4b5e6f"
    job = build(cronjob)
    validate_k8s(to_yaml(job), newest_kube_version)
    created = create_job(job, api=batch)
    stored = server.jobs["etl", f"{CRONJOB}-bf-{BACKFILL_ID}"]
    assert "ownerReferences" not in stored["metadata"]
    assert stored["spec"] == job["spec"]  # nothing lost through the client's models
    assert created["metadata"]["uid"] == stored["metadata"]["uid"]
    assert created["metadata"]["namespace"] == "etl"
    assert created["spec"] == job["spec"]
    with pytest.raises(ConfigError, match=rf"a Job named etl/{CRONJOB}-bf-{BACKFILL_ID} already"):
        create_job(job, api=batch)


def test_api_errors_become_clear_errors(api, events):
    server, batch = api
    with pytest.raises(ConfigError, match=rf"no CronJob etl/{CRONJOB}; .* or use --from-manifest"):
        read_cronjob("etl", CRONJOB, api=batch)
    job = build(events)
    with pytest.raises(ConfigError, match="has no namespace"):
        create_job(job, api=batch)
    with pytest.raises(ConfigError, match="is for namespace etl, not other"):
        create_job(job | {"metadata": job["metadata"] | {"namespace": "etl"}}, namespace="other")
    too_long = job | {"metadata": job["metadata"] | {"name": "x" * 64}}
    with pytest.raises(ConfigError, match=r"rejected create .*must be no more than 63 characters"):
        create_job(too_long, namespace="etl", api=batch)
    bogus = job | {"spec": job["spec"] | {"backoffLimitPerIndexes": 1}}
    with pytest.raises(ConfigError, match="backoffLimitPerIndexes"):
        create_job(bogus, namespace="etl", api=batch)
    server.fail_with = 403
    with pytest.raises(
        ConfigError,
        match=r"RBAC: .* forbids verb 'get' on resource cronjobs.batch .*CronJob etl/.*'get' on cronjobs",
    ):
        read_cronjob("etl", CRONJOB, api=batch)
    with pytest.raises(
        ConfigError, match=r"RBAC: .* verb 'create' on resource jobs.batch .*'create' on jobs"
    ):
        create_job(job, namespace="etl", api=batch)
    server.fail_with = 401
    with pytest.raises(ConfigError, match=r"HTTP 401.*RBAC"):
        read_cronjob("etl", CRONJOB, api=batch)
    server.fail_with = 500
    with pytest.raises(NotReadyError, match=rf"{server.url} failed to create .*HTTP 500"):
        create_job(job, namespace="etl", api=batch)
    assert server.jobs == {}


def test_an_unreachable_api_server_is_not_ready():
    with running_api() as server:
        url = server.url
    configuration = client.Configuration()
    configuration.host = url
    configuration.retries = 0
    batch = client.BatchV1Api(client.ApiClient(configuration))
    with pytest.raises(NotReadyError, match=rf"Kubernetes API {url} unreachable trying to get"):
        read_cronjob("etl", CRONJOB, api=batch)


def test_without_any_cluster_config_the_default_client_says_so(monkeypatch, tmp_path):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="runner backfill job needs the Kubernetes API"):
        read_cronjob("etl", CRONJOB)


def test_the_sent_body_is_json_the_server_accepts(api, events):
    """The env JSON is a string value inside the Job, not nested objects."""
    server, batch = api
    create_job(build(events), namespace="etl", api=batch)
    (stored,) = server.jobs.values()
    value = pod_environment(stored)[WINDOWS_ENV]
    assert json.loads(value)[0] == ["2026-01-01T00:00:00+00:00", "2026-01-02T00:00:00+00:00"]


def test_a_window_deadline_annotation_that_is_not_a_number_is_refused(events):
    events["metadata"]["annotations"][WINDOW_DEADLINE_ANNOTATION] = "30m"
    with pytest.raises(ConfigError, match="window-deadline-seconds is '30m'"):
        build(events)
