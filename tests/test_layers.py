"""The layers' import rules ([tool.importlinter] in pyproject.toml) hold, and catch a breach.

``make lint`` runs ``lint-imports``; these tests run it too, as a subprocess: on the code
as it is, and on a copy of the package with one import planted the wrong way, which must
fail naming that import.  The planted imports are the two this layout was cut to remove.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with ``project``'s pyproject.toml, finding ``project``'s runner first."""
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(project / "pyproject.toml"), "--no-cache"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_code_keeps_every_contract():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "named"),
    [
        (  # the cycle that was: the pipeline layer reaching up into the tools
            "runner/pipeline/steps.py",
            "from runner.tools.extract.python import from_iterable",
            "runner.pipeline.steps -> runner.tools.extract.python",
        ),
        (  # settings checking names with the warehouse's code
            "runner/settings.py",
            "from runner.warehouse.sql import quote_identifier",
            "runner.settings -> runner.warehouse.sql",
        ),
        (  # the error tree depending on settings
            "runner/errors.py",
            "import runner.settings",
            "runner.errors -> runner.settings",
        ),
    ],
)
def test_an_import_the_wrong_way_is_caught_and_named(tmp_path, module, planted, named):
    shutil.copytree(REPO / "runner", tmp_path / "runner", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    text = target.read_text(encoding="utf-8")
    head, marker, rest = text.partition("from __future__ import annotations\n")
    assert marker, module
    target.write_text(f"{head}{marker}\n{planted}  # noqa\n{rest}", encoding="utf-8")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert named in result.stdout, result.stdout
