"""Start-up cost against project size: `runner run` of one trivial pipeline with 1 and with
500 pipeline files, and `runner list` of all 500.  Reports medians and the ratio as JSON and
as a table.  Usage: python benchmarks/startup.py [--repeat N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def timed(project: Path, *args: str, repeat: int) -> float:
    env = {**os.environ, "RUNNER_PROJECT_DIR": str(project), "RUNNER_LOG_FORMAT": "json"}
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "runner", *args], env=env, check=True, capture_output=True
        )
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one = make_project(Path(tmp) / "one", 1)
        many = make_project(Path(tmp) / "many", 500)
        run_one = timed(one, "run", "p0000", repeat=args.repeat)
        run_many = timed(many, "run", "p0000", repeat=args.repeat)
        list_many = timed(many, "list", repeat=args.repeat)
    report = {
        "run_1_file_s": round(run_one, 3),
        "run_500_files_s": round(run_many, 3),
        "run_ratio_500_vs_1": round(run_many / run_one, 3),
        "run_ratio_target": 1.2,
        "list_500_files_s": round(list_many, 3),
    }
    width = max(len(k) for k in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
