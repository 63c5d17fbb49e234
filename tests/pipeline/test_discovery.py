import secrets
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


def test_an_error_inside_a_helper_module_names_the_helper_and_its_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paths in messages are relative to the working directory
    # helper names of this test only: another test's `shop` may be imported in this process
    shop, broken, factory = (f"{n}_{secrets.token_hex(3)}" for n in ("shop", "broken", "factory"))
    (tmp_path / f"{shop}.py").write_text("X = 1\nY = 2\nZ = undefined_name\n")
    (tmp_path / f"{broken}.py").write_text("def f(:\n    pass\n")
    (tmp_path / f"{factory}.py").write_text(
        "from runner import el\n\n"
        "def make(name):\n"
        "    return el(name, schedule='0 0 32 * *', extract=[], load=print)\n"
    )
    write(tmp_path, "orders", f"from runner import el\nimport {shop}\npipeline = None\n")
    write(tmp_path, "syntax", f"\n\nimport {broken}\n")
    write(tmp_path, "made", f"import {factory}\n\npipeline = {factory}.make('made')\n")
    _, failures = Registry(tmp_path).load_all()
    errors = {f.name: str(f.error) for f in failures}
    assert errors["orders"].startswith("orders_pipeline.py:2: import failed: NameError")
    assert errors["orders"].endswith(f"(in {shop}.py:3)")
    # the pipeline's own line is the import, not the helper's line number
    assert errors["syntax"].startswith("syntax_pipeline.py:3: import failed: SyntaxError")
    assert errors["syntax"].endswith(f"(in {broken}.py:1)")
    assert errors["made"].startswith("made_pipeline.py:3: pipeline 'made': schedule:")
    assert "day-of-month 32 out of range (1-31)" in errors["made"]
    assert errors["made"].endswith(f"(in {factory}.py:4)")
    assert all("\n" not in e for e in errors.values())


def test_an_error_in_a_library_is_not_blamed_on_a_helper(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "lib", "import json\njson.loads('{')\n")
    _, [failure] = Registry(tmp_path).load_all()
    assert str(failure.error).startswith("lib_pipeline.py:2: import failed: JSONDecodeError")
    assert "(in " not in str(failure.error)
