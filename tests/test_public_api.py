import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

NAMESPACES = ["runner", "runner.extract", "runner.transform", "runner.load"]
BUILD = Path(__file__).parents[1] / "docs" / "build_api.py"


def run_python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("name", NAMESPACES)
def test_all_names_resolve_and_nothing_else_is_advertised(name):
    namespace = importlib.import_module(name)
    for attribute in namespace.__all__:
        assert getattr(namespace, attribute) is not None, f"{name}.{attribute}"
    assert sorted(namespace.__all__) == sorted(set(namespace.__all__))
    assert set(dir(namespace)) == set(namespace.__all__)
    with pytest.raises(AttributeError, match=f"module '{name}' has no attribute 'nothing_here'"):
        namespace.nothing_here  # noqa: B018


def test_importing_the_package_does_no_heavy_work():
    code = (
        "import sys, runner, runner.cli; "
        "heavy = [m for m in ('chdb', 'clickhouse_connect', 'kubernetes', 'pyarrow', 'pyarrow.compute') "
        "if m in sys.modules]; print(heavy)"
    )
    assert run_python(code) == "[]"


def test_the_namespaces_import_no_tool_until_a_name_is_used():
    code = (
        "import sys, runner.extract, runner.transform, runner.load; "
        "loaded = sorted(m for m in sys.modules if m.startswith(('runner.tools', 'runner.pipeline',"
        " 'pyarrow', 'pydantic', 'urllib3'))); print(loaded); "
        "runner.transform.rename; print('runner.tools.transform.columns' in sys.modules)"
    )
    assert run_python(code).splitlines() == ["[]", "True"]


def test_every_entry_point_in_the_reference_comes_from_a_short_namespace():
    """The API reference documents the namespaces, and each lists exactly what it documents."""
    spec = importlib.util.spec_from_file_location("build_api", BUILD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("runner.extract", "runner.transform", "runner.load"):
        assert sorted(module.PUBLIC_API[name]) == sorted(importlib.import_module(name).__all__)
    assert not [page for page in module.PUBLIC_API if page.startswith("runner.tools")]


@pytest.mark.parametrize(
    ("short", "old"),
    [
        ("runner.extract.read_csv", "runner.tools.extract.files.read_csv"),
        ("runner.extract.http_json", "runner.tools.extract.http.http_json"),
        ("runner.extract.Cursor", "runner.tools.extract.http.pagination.Cursor"),
        ("runner.extract.clickhouse_query", "runner.tools.extract.clickhouse.clickhouse_query"),
        ("runner.extract.from_iterable", "runner.tools.extract.python.from_iterable"),
        ("runner.transform.map_rows", "runner.tools.transform.rows.map_rows"),
        ("runner.transform.cast", "runner.tools.transform.columns.cast"),
        ("runner.transform.where", "runner.tools.transform.compute.where"),
        ("runner.transform.validate", "runner.tools.transform.validate.validate"),
        ("runner.transform.dedupe", "runner.tools.transform.dedupe.dedupe"),
        ("runner.load.clickhouse_upsert", "runner.tools.load.clickhouse.clickhouse_upsert"),
        (
            "runner.load.clickhouse_replace_window",
            "runner.tools.load.replace_window.clickhouse_replace_window",
        ),
        ("runner.load.write_parquet", "runner.tools.load.files.write_parquet"),
        ("runner.clickhouse_append", "runner.tools.load.clickhouse.clickhouse_append"),
        ("runner.tools.extract.python.IterableSource", "runner.pipeline.steps.IterableSource"),
    ],
)
def test_the_old_import_paths_still_give_the_same_objects(short, old):
    def resolve(path):
        module, _, attribute = path.rpartition(".")
        return getattr(importlib.import_module(module), attribute)

    assert resolve(short) is resolve(old)
