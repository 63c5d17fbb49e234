"""Start-up cost against project size: `runner run` of one trivial pipeline with 1 and with
500 pipeline files, `runner list` of all 500, and `runner render` of 1,000 pipelines into a
copy of the chart.  Each figure is the median of fresh processes.  Reports the figures and
the ratio as JSON and as a table.
Usage: python benchmarks/startup.py [--repeat N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml  # type: ignore[import-untyped]  # PyYAML, a runner dependency; no stubs

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "pipeline-runner"
RUN_FILES = 500
RENDER_FILES = 1000
RUN_TARGET = 1.2

MODULE = """from runner import el

pipeline = el({name!r}, schedule="*/5 * * * *", extract=[{{"i": 1}}], load=lambda batch: None)
"""


def make_project(root: Path, count: int) -> Path:
    pipelines = root / "pipelines"
    pipelines.mkdir(parents=True)
    for i in range(count):
        name = f"p{i:04d}"
        (pipelines / f"{name}_pipeline.py").write_text(MODULE.format(name=name))
    return root


def runner(project: Path, *args: str) -> None:
    env = {**os.environ, "RUNNER_PROJECT_DIR": str(project), "RUNNER_LOG_FORMAT": "json"}
    done = subprocess.run(
        [sys.executable, "-m", "runner", *args], env=env, capture_output=True, check=False
    )
    if done.returncode:
        message = done.stderr.decode(errors="replace").strip() or done.stdout.decode()[-500:]
        raise SystemExit(f"runner {' '.join(args)} failed ({done.returncode}): {message}")


def timed(
    project: Path, *args: str, repeat: int, before: Callable[[], None] | None = None
) -> float:
    """Median wall time of ``runner ARGS`` in fresh processes (``before`` runs untimed)."""
    samples = []
    for _ in range(repeat):
        if before is not None:
            before()
        started = time.perf_counter()
        runner(project, *args)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def measure(workdir: Path, repeat: int) -> dict[str, float]:
    """Every start-up figure, in projects generated under ``workdir``."""
    one = make_project(workdir / "one", 1)
    many = make_project(workdir / "many", RUN_FILES)
    for project in (one, many):
        runner(project, "migrate")  # the run records itself in the warehouse
    window = ("--start", "2026-01-01T00:00:00", "--end", "2026-01-01T00:05:00")
    runner(one, "run", "p0000", *window)  # warm the file cache for both
    run_one = timed(one, "run", "p0000", *window, repeat=repeat)
    run_many = timed(many, "run", "p0000", *window, repeat=repeat)
    list_many = timed(many, "list", repeat=repeat)
    rendered = make_project(workdir / "render", RENDER_FILES)
    chart = rendered / "charts" / "pipeline-runner"
    shutil.copytree(CHART, chart)
    # the chart's own values configure the example `exports`, which this project lacks
    values = chart / "values.yaml"
    values.write_text(yaml.safe_dump(yaml.safe_load(values.read_text()) | {"pipelines": {}}))

    def fresh_chart() -> None:
        shutil.rmtree(chart / "templates" / "pipelines", ignore_errors=True)

    render = timed(rendered, "render", repeat=repeat, before=fresh_chart)
    generated = len(list((chart / "templates" / "pipelines").glob("*.yaml")))
    if generated != RENDER_FILES:
        raise SystemExit(f"runner render wrote {generated} templates, expected {RENDER_FILES}")
    return {
        "run_1_file_s": round(run_one, 3),
        f"run_{RUN_FILES}_files_s": round(run_many, 3),
        f"run_ratio_{RUN_FILES}_vs_1": round(run_many / run_one, 3),
        "run_ratio_target": RUN_TARGET,
        f"list_{RUN_FILES}_files_s": round(list_many, 3),
        f"render_{RENDER_FILES}_pipelines_s": round(render, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = measure(Path(tmp), args.repeat)
    width = max(len(k) for k in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
