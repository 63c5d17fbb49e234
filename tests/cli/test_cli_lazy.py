"""``runner --help`` loads the command line and nothing it does not need.

Help is the first thing anyone runs and what every shell completion asks: it must not pay
for the tools, the pipeline model, settings (pydantic models) or the heavy drivers.  Each
case is a fresh interpreter, so nothing another test imported hides an import.
"""

import json
import subprocess
import sys

import pytest

NOT_FOR_HELP = (
    "runner.tools",
    "runner.pipeline",
    "runner.settings",
    "runner.services",
    "runner.warehouse",
    "runner.state",
    "runner.migrate",
    "runner.deploy",
    "runner.kube",
    "runner.log",
    "pydantic_settings",
    "chdb",
    "clickhouse_connect",
    "kubernetes",
    "pyarrow",
    "structlog",
    "jinja2",
)
PROBE = """
import json, sys
externals = tuple(json.loads(sys.argv[2]))
sys.argv = ["runner", *json.loads(sys.argv[1])]
from runner.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("runner", *externals))
print(json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""


def loaded_by(args: list[str]) -> tuple[int, str, list[str]]:
    externals = sorted({name.split(".")[0] for name in NOT_FOR_HELP} - {"runner"})
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args), json.dumps(externals)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = json.loads(out.stderr.strip().splitlines()[-1])
    return report["code"], out.stdout, report["loaded"]


@pytest.mark.parametrize(
    "args", [["--help"], ["run", "--help"], ["backfill", "run", "--help"], ["query", "--help"]]
)
def test_help_loads_no_tools_models_or_drivers(args):
    code, stdout, loaded = loaded_by(args)
    assert code in (0, None)
    assert "Usage: runner" in stdout
    wrong = [m for m in loaded if any(m == n or m.startswith(n + ".") for n in NOT_FOR_HELP)]
    assert not wrong, f"`runner {' '.join(args)}` imported {wrong}"


def test_the_probe_sees_what_a_command_loads():
    """The same probe on a command that needs settings does list them: it can fail."""
    _, _, loaded = loaded_by(["list", "-C", "/nonexistent-project"])
    assert "runner.settings" in loaded
