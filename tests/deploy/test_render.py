"""`runner render`: golden files, determinism, added and removed pipelines, --check."""

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runner.cli import app
from runner.deploy.render import GENERATED_DIR, MARKER, render, write
from runner.errors import PipelineDefinitionError
from runner.pipeline.discovery import Registry

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
PIPELINES = {
    "orders": """
        from runner import el
        pipeline = el(
            "orders",
            schedule="*/15 * * * *",
            timezone="Europe/Berlin",
            description="Orders -> warehouse, with 'quotes' and \\"doubles\\"",
            owner="checkout",
            timeout_seconds=900,
            resources={"cpu_request": "250m", "memory_limit": "2Gi"},
            extract=[],
            load=lambda b: None,
        )
    """,
    "manual_fix": """
        from runner import el
        pipeline = el("manual_fix", extract=[], load=lambda b: None)
    """,
}


@pytest.fixture
def project(tmp_path, chart_copy):
    (tmp_path / "pipelines").mkdir()
    for name, body in PIPELINES.items():
        (tmp_path / "pipelines" / f"{name}_pipeline.py").write_text(textwrap.dedent(body))
    chart_copy(tmp_path / "chart")
    return tmp_path


def rendered(project):
    return render(Registry(project / "pipelines"), project / "chart", project)


def test_rendering_matches_the_golden_files(project):
    result = rendered(project)
    names = {p.name for p in result.files}
    assert names == {"orders.yaml", "manual_fix.yaml"}
    for path, text in result.files.items():
        assert text.startswith(MARKER)
        assert text == (GOLDEN / path.name).read_text(), f"{path.name} differs from its golden file"


def test_manual_pipelines_get_a_suspended_never_firing_cronjob(project):
    text = next(t for p, t in rendered(project).files.items() if p.name == "manual_fix.yaml")
    assert '"schedule" "0 0 31 2 *"' in text
    assert '"suspend") true (hasKey' in text


def test_rendering_is_deterministic_and_follows_added_and_removed_pipelines(project):
    first = rendered(project)
    assert write(first)
    assert rendered(project).files == first.files
    assert write(rendered(project)) == []  # nothing changes on a re-run
    (project / "pipelines" / "extra_pipeline.py").write_text(
        "from runner import el\npipeline = el('extra', schedule='@daily', extract=[], load=print)\n"
    )
    added = rendered(project)
    assert (project / "chart" / GENERATED_DIR / "extra.yaml") in added.files
    write(added)
    (project / "pipelines" / "extra_pipeline.py").unlink()
    removed = rendered(project)
    assert removed.stale == [project / "chart" / GENERATED_DIR / "extra.yaml"]
    write(removed)
    assert not (project / "chart" / GENERATED_DIR / "extra.yaml").exists()


def test_hand_written_templates_beside_generated_ones_are_left_alone(project):
    write(rendered(project))
    own = project / "chart" / GENERATED_DIR / "notes.yaml"
    own.write_text("# my own template\n")
    assert rendered(project).stale == []


def test_check_reports_a_stale_chart_with_a_diff(project):
    env = {"RUNNER_PROJECT_DIR": str(project)}
    runner = CliRunner()
    stale = runner.invoke(app, ["render", "--chart", "chart", "--check"], env=env)
    assert stale.exit_code == 1
    assert "+++ " in stale.stdout
    assert "the chart is stale" in stale.stderr
    assert runner.invoke(app, ["render", "--chart", "chart"], env=env).exit_code == 0
    fresh = runner.invoke(app, ["render", "--chart", "chart", "--check"], env=env)
    assert fresh.exit_code == 0, fresh.output
    (project / "pipelines" / "orders_pipeline.py").write_text(
        (project / "pipelines" / "orders_pipeline.py").read_text().replace("*/15", "*/20")
    )
    changed = runner.invoke(app, ["render", "--chart", "chart", "--check"], env=env)
    assert changed.exit_code == 1
    assert '"overrides" $o "schedule" "*/15 * * * *" "source"' in changed.stdout


def test_a_broken_pipeline_or_a_missing_chart_refuses_to_render(project):
    (project / "pipelines" / "bad_pipeline.py").write_text("raise ImportError('nope')\n")
    with pytest.raises(PipelineDefinitionError, match="cannot render with a broken pipeline"):
        rendered(project)
    (project / "pipelines" / "bad_pipeline.py").unlink()
    with pytest.raises(PipelineDefinitionError, match="is not a Helm chart"):
        render(Registry(project / "pipelines"), project / "nochart", project)


def test_the_committed_chart_is_up_to_date_with_the_example_pipelines():
    result = render(Registry(ROOT / "pipelines"), ROOT / "charts" / "pipeline-runner", ROOT)
    assert result.diff() == "", "run `runner render` and commit the chart"


def test_the_schema_and_the_index_list_exactly_the_pipelines(project):
    import json

    result = rendered(project)
    schema = json.loads(result.support[project / "chart" / "values.schema.json"])
    pipelines = schema["properties"]["pipelines"]
    assert set(pipelines["properties"]) == {"orders", "manual_fix"}
    assert pipelines["additionalProperties"] is False
    assert pipelines["properties"]["orders"] == {
        "description": "Overrides of the pipeline orders (pipelines/orders_pipeline.py).",
        "allOf": [{"$ref": "#/definitions/pipeline"}],
    }
    index = result.support[project / "chart" / "templates" / "pipelines" / "_index.tpl"]
    assert '["manual_fix", "orders"]' in index
    write(result)
    (project / "pipelines" / "extra_pipeline.py").write_text(
        "from runner import el\npipeline = el('extra', schedule='@daily', extract=[], load=print)\n"
    )
    added = rendered(project)
    assert '"extra": {' in added.diff()  # --check notices a schema that lags the pipelines
    write(added)
    assert (
        "extra"
        in json.loads((project / "chart" / "values.schema.json").read_text())["properties"][
            "pipelines"
        ]["properties"]
    )


def test_chart_values_for_a_pipeline_that_does_not_exist_are_refused(project):
    values = project / "chart" / "values.yaml"
    values.write_text(values.read_text().replace("pipelines: {}", "pipelines: {order: {}}"))
    with pytest.raises(
        PipelineDefinitionError,
        match=r"values.yaml: pipelines.order configures a pipeline that does not exist "
        r"\(there are: manual_fix, orders\)",
    ):
        rendered(project)


def test_a_chart_without_the_pipeline_definition_in_its_schema_is_refused(project):
    (project / "chart" / "values.schema.json").write_text('{"properties": {"pipelines": {}}}')
    with pytest.raises(PipelineDefinitionError, match="not the chart's values schema"):
        rendered(project)


@pytest.mark.parametrize(
    ("options", "deadline"),
    [
        ("", 3600),  # the default catchup of 3: four windows in one Job
        ("catchup=0,", 900),
        ("catchup=1,", 1800),
        ("incremental=True,", 900),  # follows its watermark: no catch-up
    ],
)
def test_the_job_deadline_covers_the_windows_a_scheduled_run_may_catch_up(
    tmp_path, chart_copy, options, deadline
):
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "hourly_pipeline.py").write_text(
        "from runner import el\n"
        f"pipeline = el('hourly', schedule='0 * * * *', timeout_seconds=900, {options}"
        " extract=[], load=lambda b: None)\n"
    )
    chart_copy(tmp_path / "chart")
    [text] = rendered(tmp_path).files.values()
    assert f"activeDeadlineSeconds: {deadline}\n" in text
