"""The API reference: every option of every public entry point is explained, and it builds."""

import importlib
import importlib.util
import inspect
import re
from pathlib import Path

import pytest

BUILD = Path(__file__).parents[1] / "docs" / "build_api.py"


def load_builder():
    spec = importlib.util.spec_from_file_location("build_api", BUILD)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PUBLIC_API = load_builder().PUBLIC_API
ENTRY_POINTS = [(module, name) for module, names in PUBLIC_API.items() for name in names]


@pytest.mark.parametrize(("module", "name"), ENTRY_POINTS, ids=str)
def test_every_option_of_a_public_entry_point_is_explained(module, name):
    entry = getattr(importlib.import_module(module), name)
    doc = inspect.getdoc(entry) or ""
    if inspect.isclass(entry):  # options of a pydantic model are its fields
        parameters = list(getattr(entry, "model_fields", {})) or [
            p for p in inspect.signature(entry).parameters if p != "self"
        ]
    else:
        parameters = list(inspect.signature(entry).parameters)
    # named as a literal: ``name``, ``name=...``, ``name(...)``
    undocumented = [p for p in parameters if not re.search(rf"``{p}(``|[=(\[.])", doc)]
    assert not undocumented, f"{module}.{name}: {undocumented} not explained in its docstring"


def test_every_listed_module_and_entry_point_exists():
    for module, names in PUBLIC_API.items():
        imported = importlib.import_module(module)
        for name in names:
            assert callable(getattr(imported, name)), f"{module}.{name}"


@pytest.mark.slow
def test_the_reference_builds_a_page_per_module(tmp_path):
    load_builder().build(tmp_path)
    for module in PUBLIC_API:
        page = tmp_path.joinpath(*module.split(".")).with_suffix(".html")
        assert page.is_file(), f"no page for {module}"
    files_page = (tmp_path / "runner" / "extract.html").read_text()
    assert "read_csv" in files_page
    assert "missing_files" in files_page  # the tool's own docstring, through the lazy name


def test_every_declaration_option_is_explained():
    from runner.pipeline.factory import SpecOptions

    doc = inspect.getdoc(SpecOptions) or ""
    undocumented = [key for key in SpecOptions.__annotations__ if f"``{key}``" not in doc]
    assert not undocumented, f"SpecOptions: {undocumented} not explained in its docstring"
