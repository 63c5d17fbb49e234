"""Hostile names and values against the chart, through the real Helm 3 and Helm 4 binaries.

Names: the longest release name Helm allows (53) with the longest pipeline names (48),
sharing long prefixes; a pair of pipelines whose cut names collide even with the hash
(found by brute force: equal first 12 characters and equal sha256 prefix). Values: a
schedule that would move the window grid, pipelines that do not exist, secrets as
literal env values, pod labels that would hijack the chart's own.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from runner.deploy.names import CRONJOB_NAME_MAX, check_unique_cronjob_names, cronjob_name
from runner.deploy.render import render, write
from runner.errors import PipelineDefinitionError
from runner.pipeline.discovery import Registry

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "pipeline-runner"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: sha256(name)[:8] is 391ad996 for both, and they share their first 17 characters
COLLIDING = (
    "collision_prefix_alna_xxxxxxxxxxxxxxxxxxxx",
    "collision_prefix_dboo_xxxxxxxxxxxxxxxxxxxx",
)
LONG = (
    "customer_lifetime_value_rollup_by_country_daily",
    "customer_lifetime_value_rollup_by_country_weekly",
    "customer_lifetime_value_rollup_by_region_weekly_",
    "c",
)
RELEASES = (
    "r",
    "pipelines",
    "a" * 23,
    "b" * 30,
    "x" * 31,
    "averyveryverylongreleasenamethat-is-53-characters-lon",
)


def fetch_helm(major: int) -> Path:
    result = subprocess.run(
        [sys.executable, str(REPO / "k8s" / "tools" / "get_helm.py"), "--print", str(major)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"could not fetch Helm {major}: {result.stderr.strip()}", pytrace=False)
    return Path(result.stdout.strip())


@pytest.fixture(scope="module", params=[3, 4], ids=["helm3", "helm4"])
def helm(request):
    return fetch_helm(request.param)


def project_with(tmp_path: Path, names: tuple[str, ...]) -> Path:
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    for name in names:
        (pipelines / f"{name}_pipeline.py").write_text(
            textwrap.dedent(
                f"""
                from runner import el
                pipeline = el({name!r}, schedule="0 * * * *", extract=[], load=print)
                """
            )
        )
    import shutil

    shutil.copytree(CHART, tmp_path / "chart", ignore=shutil.ignore_patterns("pipelines"))
    values = yaml.safe_load((tmp_path / "chart" / "values.yaml").read_text())
    values["pipelines"] = {}
    (tmp_path / "chart" / "values.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    return tmp_path


def run(helm: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(helm), *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


# -- names ----------------------------------------------------------------------------


def test_pipelines_whose_cut_names_collide_are_refused_by_render(tmp_path):
    project = project_with(tmp_path, COLLIDING)
    with pytest.raises(PipelineDefinitionError) as caught:
        render(Registry(project / "pipelines"), project / "chart", project)
    message = str(caught.value)
    assert f"pipelines {COLLIDING[0]!r} and {COLLIDING[1]!r} would get the same CronJob name" in (
        message
    )
    assert "rename one of them" in message
    cli = subprocess.run(
        [sys.executable, "-m", "runner", "render", "--chart", "chart"],
        env={"RUNNER_PROJECT_DIR": str(project), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert cli.returncode == 3
    [line] = cli.stderr.strip().splitlines()
    assert "would get the same CronJob name" in line
    assert not (project / "chart" / "templates" / "pipelines").exists()  # nothing written


def test_the_collision_check_knows_short_prefixes_do_not_collide():
    assert cronjob_name("r", COLLIDING[0]) != cronjob_name("r", COLLIDING[1])  # not cut
    assert cronjob_name("r" * 30, COLLIDING[0]) == cronjob_name("r" * 30, COLLIDING[1])
    check_unique_cronjob_names(LONG)  # long shared prefixes, different hashes: fine


@pytest.mark.slow
def test_every_name_fits_and_cut_names_stay_unique(helm, tmp_path):
    project = project_with(tmp_path, LONG)
    write(render(Registry(project / "pipelines"), project / "chart", project))
    for release in RELEASES:
        for extra in ([], ["--set", "migrations.hook=false"]):
            out = run(helm, "template", release, str(project / "chart"), "-n", "etl", *extra)
            docs = [d for d in yaml.safe_load_all(out.stdout) if d]
            cronjobs = {}
            for doc in docs:
                name = doc["metadata"]["name"]
                assert DNS_LABEL.match(name), name
                assert len(name) <= 63, name
                if doc["kind"] == "CronJob":
                    pipeline = doc["metadata"]["labels"]["pipeline-runner/pipeline"]
                    cronjobs[pipeline] = name
                    # the controller appends "-" and the minutes since the epoch
                    assert len(f"{name}-{29_999_999}") <= 63
                    assert len(name) <= CRONJOB_NAME_MAX
            assert set(cronjobs) == set(LONG)
            assert len(set(cronjobs.values())) == len(LONG), cronjobs
            # runner/deploy/names.py computes exactly what Helm did
            fullname = cronjobs["c"].removesuffix("-c")
            assert len(fullname) <= 30
            for pipeline, name in cronjobs.items():
                assert cronjob_name(fullname, pipeline) == name


def test_releases_sharing_a_long_prefix_get_different_names(helm):
    names = []
    for release in ("analytics-production-eu-west-1a", "analytics-production-eu-west-1b"):
        out = run(helm, "template", release, str(CHART), "-n", "etl").stdout
        names.append({(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(out) if d})
    first, second = names
    assert len(first) == len(second) > 10
    assert not first & second  # no object of one release is the other's


def test_notes_commands_make_valid_job_names(tmp_path):
    """NOTES.txt is rendered only by install/upgrade; Helm 4's client-side dry run needs no
    cluster (Helm 3's still asks one for its version), so this runs on Helm 4 alone."""
    helm = fetch_helm(4)
    project = project_with(tmp_path, LONG)
    write(render(Registry(project / "pipelines"), project / "chart", project))
    release = RELEASES[-1]
    out = subprocess.run(
        [str(helm), "install", release, str(project / "chart"), "-n", "etl", "--dry-run=client"],
        env={"KUBECONFIG": str(tmp_path / "no-cluster"), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    notes = out[out.index("NOTES:") :]
    commands = re.findall(
        r"kubectl create job -n etl --from=cronjob/(\S+) (\S+)-m\$\(date \+%s\)", notes
    )
    assert len(commands) == len(LONG)
    for cronjob, stem in commands:
        job = f"{stem}-m{9_999_999_999}"  # seconds since the epoch: 10 digits until 2286
        assert DNS_LABEL.match(job), job
        assert len(job) <= 63, job
        assert len(cronjob) <= CRONJOB_NAME_MAX


# -- values ---------------------------------------------------------------------------


def test_a_schedule_override_that_moves_the_window_grid_is_refused(helm):
    moved = run(
        helm,
        "template",
        "x",
        str(CHART),
        "--set",
        "pipelines.events.schedule=*/5 * * * *",
        check=False,
    )
    assert moved.returncode != 0
    assert (
        'pipelines.events.schedule "*/5 * * * *" differs from the schedule "0 * * * *" in '
        "pipelines/events_pipeline.py: run windows follow the pipeline's own schedule"
    ) in moved.stderr
    same = run(helm, "template", "x", str(CHART), "--set", "pipelines.events.schedule=0  * * *  *")
    assert 'schedule: "0 * * * *"' in same.stdout


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"pipelines": {"event": {"suspend": True}}}, "event"),  # a typo of events
        ({"pipelines": {"events": {"shedule": "0 * * * *"}}}, "shedule"),
        ({"extraEnv": [{"name": "SHOP_API_TOKEN", "value": "hunter2"}]}, "extraEnv"),
        (
            {"pipelines": {"events": {"extraEnv": [{"name": "DB_PASSWORD", "value": "x"}]}}},
            "extraEnv",
        ),
        (
            {"pipelines": {"events": {"podLabels": {"pipeline-runner/pipeline": "orders"}}}},
            "podLabels",
        ),
        ({"podLabels": {"batch.kubernetes.io/job-name": "forged"}}, "podLabels"),
        ({"extraVolumeMounts": [{"name": "x", "mountPath": "/tmp"}]}, "extraVolumeMounts"),  # noqa: S108 - the path is the point
        (
            {"extraVolumes": [{"name": "x", "emptyDir": {}, "secret": {"secretName": "s"}}]},
            "extraVolumes",
        ),
        ({"pipelines": {"events": {"image": {"digest": "sha256:short"}}}}, "digest"),
    ],
)
def test_the_schema_refuses_hostile_values(helm, tmp_path, values, where):
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    result = run(helm, "template", "x", str(CHART), "-f", str(path), check=False)
    assert result.returncode != 0
    assert where in result.stderr
