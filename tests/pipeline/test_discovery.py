import sys
import textwrap

import pytest

from runner.errors import PipelineDefinitionError, PipelineNotFoundError
from runner.pipeline.discovery import Registry

GOOD = textwrap.dedent(
    """
    from runner import el

    pipeline = el({name!r}, schedule="*/5 * * * *", extract=[{{"i": 1}}], load=lambda b: None)
    """
)


def write(directory, name, body):
    path = directory / f"{name}_pipeline.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


def loaded_modules():
    return {m for m in sys.modules if m.startswith("runner_project_pipelines.")}


def test_running_one_of_500_pipelines_imports_only_its_module(tmp_path):
    for i in range(500):
        write(tmp_path / f"group{i % 7}", f"p{i:03d}", GOOD.format(name=f"p{i:03d}"))
    before = loaded_modules()
    registry = Registry(tmp_path)
    assert len(registry.names()) == 500
    pipeline = registry.load("p123")
    assert pipeline.name == "p123"
    assert loaded_modules() - before == {"runner_project_pipelines.p123"}
    assert registry.load("p123") is pipeline  # cached


def test_listing_reports_broken_modules_without_hiding_the_others(tmp_path):
    write(tmp_path, "good", GOOD.format(name="good"))
    write(tmp_path, "syntax", "pipeline = (\n")
    write(tmp_path, "boom", "x = 1\nraise RuntimeError('db down')\n")
    write(tmp_path, "empty", "x = 1\n")
    write(tmp_path, "cron", GOOD.format(name="cron").replace("*/5 * * * *", "every minute"))
    write(tmp_path, "other", GOOD.format(name="different"))
    write(tmp_path, "notapipeline", "pipeline = 42\n")
    pipelines, failures = Registry(tmp_path).load_all()
    assert [p.name for p in pipelines] == ["good"]
    errors = {f.name: str(f.error) for f in failures}
    assert set(errors) == {"syntax", "boom", "empty", "cron", "other", "notapipeline"}
    assert "syntax_pipeline.py:1: import failed: SyntaxError" in errors["syntax"]
    assert "boom_pipeline.py:2: import failed: RuntimeError: db down" in errors["boom"]
    assert "defines no pipeline" in errors["empty"]
    assert "cron_pipeline.py:4:" in errors["cron"]
    assert "invalid cron schedule 'every minute'" in errors["cron"]
    assert "declares pipeline 'different'" in errors["other"]
    assert "is a int, not a pipeline" in errors["notapipeline"]
    assert all("\n" not in e for e in errors.values())


def test_duplicate_names_in_subdirectories_are_refused(tmp_path):
    write(tmp_path / "a", "orders", GOOD.format(name="orders"))
    write(tmp_path / "b", "orders", GOOD.format(name="orders"))
    with pytest.raises(PipelineDefinitionError, match="duplicate pipeline name 'orders'"):
        Registry(tmp_path).names()


def test_unknown_names_suggest_the_closest(tmp_path):
    write(tmp_path, "orders", GOOD.format(name="orders"))
    with pytest.raises(PipelineNotFoundError, match="did you mean 'orders'"):
        Registry(tmp_path).load("ordres")
    with pytest.raises(PipelineDefinitionError, match="does not exist"):
        Registry(tmp_path / "missing").names()


def test_pipeline_modules_can_import_helpers_beside_them(tmp_path):
    (tmp_path / "helpers_for_test.py").write_text("ROWS = [{'i': 1}, {'i': 2}]\n")
    write(
        tmp_path,
        "helped",
        "from helpers_for_test import ROWS\nfrom runner import el\n"
        "pipeline = el('helped', extract=ROWS, load=lambda b: None)\n",
    )
    assert Registry(tmp_path).load("helped").kind == "el"
