"""Local backfill overhead: what a window costs beyond the pipeline's own work.

The pipeline does no work (no rows, a no-op loader), so everything measured is overhead:
lock, run history, state, logging, connections, the schema gate.

* per-window overhead of `runner backfill run` over 365 daily windows, as
  (time of 365 windows - time of 1 window) / 364, so process start, imports and planning
  fall out; fresh processes, median of --repeat;
* the same as a ratio to a single `runner run` process of the same pipeline (the
  alternative: a loop of runs);
* in-process, the same windows through run_pipeline without a shared run session (each
  window connects, passes the schema gate and scans for dead runs on its own: what a local
  backfill did before) against with one.

Usage: python benchmarks/backfill.py [--repeat N] [--json PATH]
       python benchmarks/backfill.py in-process --workdir DIR --windows N (--shared | --alone)
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

WINDOWS = 365
START = "2025-01-01"
END = "2026-01-01"  # 365 daily windows
ONE_DAY_END = "2025-01-02"
TARGET_MS = 50.0

PIPELINE = """from runner import el

pipeline = el("tick", schedule="0 0 * * *", extract=[], load=lambda batch: None)
"""
MIGRATION = "CREATE TABLE IF NOT EXISTS {{database}}.unused (i UInt8) ENGINE = Memory\n"


def make_project(root: Path) -> dict[str, str]:
    """A project with the no-op pipeline and a migrated warehouse; its environment."""
    (root / "pipelines").mkdir(parents=True)
    (root / "pipelines" / "tick_pipeline.py").write_text(PIPELINE)
    (root / "migrations").mkdir()
    (root / "migrations" / "0001_unused.sql").write_text(MIGRATION)
    env = {
        **os.environ,
        "RUNNER_PROJECT_DIR": str(root),
        "RUNNER_WAREHOUSE_URL": f"chdb://{root / 'warehouse'}",
        "RUNNER_LOG_FORMAT": "json",
        "RUNNER_LOG_LEVEL": "warning",
        "RUNNER_LOCK_BACKEND": "file",
    }
    runner(env, "migrate")
    return env


def runner(env: dict[str, str], *args: str) -> float:
    """Wall time of ``runner ARGS`` in a fresh process (its output discarded)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "runner", *args], env=env, capture_output=True, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        message = done.stderr.decode(errors="replace").strip()[-1000:]
        raise SystemExit(f"runner {' '.join(args)} failed ({done.returncode}): {message}")
    return seconds


def backfill_seconds(root: Path, end: str) -> float:
    """One `runner backfill run` of [START, end) in a fresh project."""
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        env = make_project(Path(tmp))
        return runner(env, "backfill", "run", "tick", "--start", START, "--end", end)


def run_seconds(root: Path) -> float:
    """One `runner run` of one window in a fresh project (migrated beforehand)."""
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        env = make_project(Path(tmp))
        return runner(env, "run", "tick", "--start", START, "--end", ONE_DAY_END)


def in_process_seconds(root: Path, *, shared: bool) -> float:
    """Per-window seconds of run_pipeline over the windows, in a fresh process."""
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        env = make_project(Path(tmp))
        mode = "--shared" if shared else "--alone"
        command = [sys.executable, __file__, "in-process", "--workdir", tmp]
        command += ["--windows", str(WINDOWS), mode]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(f"in-process backfill failed: {done.stderr[-2000:]}")
        return float(json.loads(done.stdout.strip().splitlines()[-1])["per_window_s"])


def in_process(windows: int, *, shared: bool) -> dict[str, float]:
    """Run ``windows`` daily windows one after another through run_pipeline."""
    from datetime import UTC, datetime, timedelta
    from itertools import pairwise

    from runner.log import configure_logging
    from runner.pipeline.discovery import Registry
    from runner.pipeline.windows import Window
    from runner.services.run import run_pipeline
    from runner.services.session import RunSession
    from runner.settings import load_settings

    settings = load_settings(trigger="backfill")
    configure_logging(settings)
    registry = Registry(settings.pipelines_path)
    registry.load("tick")
    first = datetime(2025, 1, 1, tzinfo=UTC)
    bounds = [first + timedelta(days=i) for i in range(windows + 1)]
    days = [Window(a, b) for a, b in pairwise(bounds)]
    session = RunSession(settings) if shared else None
    started = time.perf_counter()
    for window in days:
        run_pipeline(settings, registry, "tick", window=window, session=session)
    seconds = time.perf_counter() - started
    if session is not None:
        session.close()
    return {"windows": windows, "seconds": seconds, "per_window_s": seconds / windows}


def measure(root: Path, repeat: int) -> dict[str, float]:
    """The figures, medians of ``repeat`` fresh processes each."""
    load_before = [round(x, 2) for x in os.getloadavg()]
    full = [backfill_seconds(root, END) for _ in range(repeat)]
    one = [backfill_seconds(root, ONE_DAY_END) for _ in range(repeat)]
    single = [run_seconds(root) for _ in range(repeat)]
    shared = [in_process_seconds(root, shared=True) for _ in range(repeat)]
    alone = [in_process_seconds(root, shared=False) for _ in range(repeat)]
    per_window = (statistics.median(full) - statistics.median(one)) / (WINDOWS - 1)
    run_one = statistics.median(single)
    return {
        "windows": WINDOWS,
        "backfill_365_s": round(statistics.median(full), 3),
        "backfill_1_s": round(statistics.median(one), 3),
        "per_window_overhead_ms": round(per_window * 1000, 1),
        "runner_run_s": round(run_one, 3),
        "per_window_vs_runner_run": round(per_window / run_one, 4),
        "in_process_shared_ms": round(statistics.median(shared) * 1000, 1),
        "in_process_alone_ms": round(statistics.median(alone) * 1000, 1),
        "target_ms": TARGET_MS,
        "repeat": repeat,
        "load_average": [load_before, [round(x, 2) for x in os.getloadavg()]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="mode")
    child = sub.add_parser("in-process", help="(internal) one in-process measurement")
    child.add_argument("--workdir", type=Path, required=True)
    child.add_argument("--windows", type=int, default=WINDOWS)
    group = child.add_mutually_exclusive_group(required=True)
    group.add_argument("--shared", action="store_true")
    group.add_argument("--alone", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.mode == "in-process":
        os.chdir(args.workdir)
        print(json.dumps(in_process(args.windows, shared=args.shared)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        figures = measure(Path(tmp), args.repeat)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
