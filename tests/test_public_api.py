import subprocess
import sys

import runner


def test_all_names_resolve_and_nothing_else_is_advertised():
    for name in runner.__all__:
        assert getattr(runner, name) is not None, name
    assert sorted(runner.__all__) == sorted(set(runner.__all__))
    assert set(dir(runner)) == set(runner.__all__)


def test_importing_the_package_does_no_heavy_work():
    code = (
        "import sys, runner, runner.cli; "
        "heavy = [m for m in ('chdb', 'clickhouse_connect', 'kubernetes', 'pyarrow', 'pyarrow.compute') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
