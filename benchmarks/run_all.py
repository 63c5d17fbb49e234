"""`make bench`: every benchmark figure next to its reference from the same run.

Absolute times vary between machines, so each figure is reported as a ratio to a
reference measured in the same run, with its target:

1. EL throughput: a framework EL pipeline (read_parquet / read_csv → clickhouse_append)
   against the engine's own ``INSERT INTO t SELECT * FROM file(...)`` of the same file,
   on the same embedded engine (target >= 0.6, goal 0.8);
2. transform throughput: the same data as ETL with a row-level Python transform
   (map_rows, >= 250k rows/s) and a vectorised Arrow one (with_columns, >= 1M rows/s),
   with their ratio to the EL figure;
3. memory: peak RSS of an EL run of 10x the rows against 1x (within 15%), next to the
   engine's idle footprint;
4. start-up: `runner run` with 500 pipeline files against 1 (<= 1.2x), `runner list` of
   500 and `runner render` of 1,000 (a few seconds; 5 s is checked);
5. local backfill overhead per window (benchmarks/backfill.py): 365 daily windows of a
   no-op pipeline in one `runner backfill run`, against one `runner run` (< 50 ms per
   window), and in-process with and without a shared run session.

A second table holds what explains the figures: EL throughput and peak RSS by insert size
and concurrency (RUNNER_INSERT_ROWS, RUNNER_INSERT_THREADS), peak RSS with one insert at a
time and of the engine's own ingestion, and the EL and memory figures with background merges
paused (diagnostic: how much is the engine merging the parts a load creates).

Every measurement runs in a fresh process with its own warehouse (benchmarks/workload.py);
engine and framework runs alternate, and the median of ``--repeat`` runs is reported.
``--baseline-src DIR`` also measures the runner package found in DIR (e.g. the code before
a change) in the same run, reported as "before".  Results: report.json and report.md in
``--out``; the tables are printed.

Usage: python benchmarks/run_all.py [--rows N] [--repeat N] [--out DIR] [--cache-dir DIR]
       [--baseline-src DIR [--baseline-label TEXT]] [--skip-startup] [--skip-sweep]
       [--skip-backfill]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import backfill  # beside this script: python puts its folder on sys.path
import data
import startup

HERE = Path(__file__).resolve().parent
WORKLOAD = HERE / "workload.py"
FORMATS = ("parquet", "csv")
#: Loader settings swept for the second table: (RUNNER_INSERT_ROWS, RUNNER_INSERT_THREADS).
SWEEP = ((262_144, 2), (524_288, 2), (1_048_576, 2), (524_288, 1))
GiB = 1 << 30


@dataclass
class Figure:
    """One line of a report table: a value, its reference, their ratio and the target."""

    name: str
    value: float
    unit: str
    reference_name: str | None = None
    reference: float | None = None
    ratio: float | None = None
    target: str = ""
    goal: str = ""
    passed: bool | None = None
    before: dict[str, float | None] = field(default_factory=dict)
    note: str = ""


@dataclass
class Runner:
    """Runs workload.py cases and keeps every result by key."""

    baseline: Path | None
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __call__(
        self,
        key: str,
        case: str,
        fmt: str,
        files: list[Path],
        *,
        before: bool = False,
        env_vars: dict[str, str] | None = None,
        pause_merges: bool = False,
    ) -> dict[str, Any]:
        """Run one case in a fresh process and a temporary warehouse; keep its result."""
        env = dict(os.environ)
        if before and self.baseline is not None:
            env["PYTHONPATH"] = str(self.baseline)
        env.update(env_vars or {})
        with tempfile.TemporaryDirectory(prefix=f"bench-{case}-") as tmp:
            command = [sys.executable, str(WORKLOAD), case, "--workdir", tmp, "--format", fmt]
            command += ["--data", *map(str, files)]
            command += ["--pause-merges"] if pause_merges else []
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=900, check=False
            )
            if done.returncode:
                log = Path(tmp) / "log.jsonl"
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise SystemExit(f"{key} failed:\n{done.stderr[-3000:]}\n{tail}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        result["load_average"] = round(os.getloadavg()[0], 2)
        self.samples.setdefault(key, []).append(result)
        rss = f"rss {result['max_rss_bytes'] / GiB:.2f} GiB"
        if "rows_per_s" in result:
            speed = f"{result['rows_per_s']:>12,} rows/s {result['seconds']:>7.2f} s"
            print(f"  {key:<28} {speed}  {rss}", file=sys.stderr)
        else:
            print(f"  {key:<28} {rss}", file=sys.stderr)
        return result

    def median(self, key: str, field_name: str) -> float:
        """The median of one field over the runs of ``key``."""
        return float(statistics.median(s[field_name] for s in self.samples[key]))


def throughput(run: Runner, files: dict[str, Path], repeat: int) -> list[Figure]:
    """Items 1 and 2: EL against the engine per format, then the two transforms."""
    before = run.baseline is not None
    print("EL throughput", file=sys.stderr)
    for _ in range(repeat):
        for fmt in FORMATS:
            run(f"engine {fmt}", "engine", fmt, [files[fmt]])
            run(f"el {fmt}", "el", fmt, [files[fmt]])
            if before:
                run(f"el {fmt} before", "el", fmt, [files[fmt]], before=True)
    print("transform throughput", file=sys.stderr)
    for _ in range(repeat):
        for case in ("map_rows", "with_columns"):
            run(case, case, "parquet", [files["parquet"]])
            if before:
                run(f"{case} before", case, "parquet", [files["parquet"]], before=True)

    figures = []
    for fmt in FORMATS:
        engine = run.median(f"engine {fmt}", "rows_per_s")
        framework = run.median(f"el {fmt}", "rows_per_s")
        ratio = framework / engine
        figure = Figure(
            name=f"EL {fmt}: framework",
            value=round(framework),
            unit="rows/s",
            reference_name=f"engine's own INSERT ... SELECT FROM file() ({fmt})",
            reference=round(engine),
            ratio=round(ratio, 3),
            target="ratio >= 0.6",
            goal="ratio >= 0.8",
            passed=ratio >= 0.6,
        )
        if before:
            value = run.median(f"el {fmt} before", "rows_per_s")
            figure.before = {"value": round(value), "ratio": round(value / engine, 3)}
        figures.append(figure)
    el_parquet = run.median("el parquet", "rows_per_s")
    for case, floor in (("map_rows", 250_000), ("with_columns", 1_000_000)):
        value = run.median(case, "rows_per_s")
        kind = "row-level Python" if case == "map_rows" else "vectorised Arrow"
        figure = Figure(
            name=f"ETL {case} ({kind})",
            value=round(value),
            unit="rows/s",
            reference_name="EL parquet, framework",
            reference=round(el_parquet),
            ratio=round(value / el_parquet, 3),
            target=f">= {floor:,} rows/s",
            passed=value >= floor,
        )
        if before:
            old = run.median(f"{case} before", "rows_per_s")
            el_before = run.median("el parquet before", "rows_per_s")
            figure.before = {"value": round(old), "ratio": round(old / el_before, 3)}
        figures.append(figure)
    return figures


def memory_files(cache_dir: Path, rows: int, big_file: Path) -> tuple[Path, list[Path]]:
    """A file of rows / 5 rows, and 2 x rows as the same Parquet file under two names."""
    small = data.ensure(cache_dir, max(rows // 5, 1), formats=("parquet",))["parquet"]
    parts = cache_dir / f"twice-{rows}"
    parts.mkdir(exist_ok=True)
    big = [parts / "part-0.parquet", parts / "part-1.parquet"]
    for link in big:
        if not link.is_symlink():
            link.symlink_to(big_file)
    return small, big


def memory(run: Runner, small: Path, big: list[Path], repeat: int) -> list[Figure]:
    """Item 3: peak RSS of an EL run of 10x the rows against 1x, and the idle engine."""
    before = run.baseline is not None
    print("memory", file=sys.stderr)
    for _ in range(repeat):
        run("idle", "idle", "parquet", [])
        run("rss small", "el", "parquet", [small])
        run("rss big", "el", "parquet", big)
        if before:
            run("rss small before", "el", "parquet", [small], before=True)
            run("rss big before", "el", "parquet", big, before=True)
    idle = run.median("idle", "max_rss_bytes")
    small_rss = run.median("rss small", "max_rss_bytes")
    big_rss = run.median("rss big", "max_rss_bytes")
    big_rows = run.samples["rss big"][0]["rows"]
    small_rows = run.samples["rss small"][0]["rows"]
    ratio = big_rss / small_rss
    figure = Figure(
        name=f"peak RSS, EL parquet of {big_rows:,} rows",
        value=round(big_rss / GiB, 3),
        unit="GiB",
        reference_name=f"the same of {small_rows:,} rows",
        reference=round(small_rss / GiB, 3),
        ratio=round(ratio, 3),
        target="ratio <= 1.15",
        passed=ratio <= 1.15,
    )
    if before:
        old_big = run.median("rss big before", "max_rss_bytes")
        old_small = run.median("rss small before", "max_rss_bytes")
        figure.before = {"value": round(old_big / GiB, 3), "ratio": round(old_big / old_small, 3)}
    idle_figure = Figure(
        name="engine idle footprint (a process that only opens chDB)",
        value=round(idle / GiB, 3),
        unit="GiB",
        reference_name=f"peak RSS, EL parquet of {big_rows:,} rows",
        reference=round(big_rss / GiB, 3),
        ratio=round(idle / big_rss, 3),
        target="context",
    )
    middle_rss = run.median("el parquet", "max_rss_bytes")
    middle_rows = run.samples["el parquet"][0]["rows"]
    plateau = Figure(
        name=f"peak RSS, EL parquet of {big_rows:,} rows against {middle_rows:,} (plateau)",
        value=round(big_rss / GiB, 3),
        unit="GiB",
        reference_name=f"the EL parquet runs of {middle_rows:,} rows above",
        reference=round(middle_rss / GiB, 3),
        ratio=round(big_rss / middle_rss, 3),
        target="context: does it keep growing?",
    )
    return [figure, plateau, idle_figure]


def explanations(
    run: Runner,
    files: dict[str, Path],
    memory_data: tuple[Path, list[Path]],
    *,
    repeat: int,
    sweep: bool,
) -> list[Figure]:
    """Insert size/threads sweep, memory and merge-paused diagnostics (the second table)."""
    small, big = memory_data
    figures: list[Figure] = []
    if sweep:
        print("insert size and threads sweep", file=sys.stderr)
        for rows, threads in SWEEP:
            for fmt in FORMATS:
                env = {"RUNNER_INSERT_ROWS": str(rows), "RUNNER_INSERT_THREADS": str(threads)}
                run(f"el {fmt} {rows}x{threads}", "el", fmt, [files[fmt]], env_vars=env)
        for fmt in FORMATS:
            engine = run.median(f"engine {fmt}", "rows_per_s")
            for rows, threads in SWEEP:
                result = run.samples[f"el {fmt} {rows}x{threads}"][0]
                figures.append(
                    Figure(
                        name=f"EL {fmt}, insert rows {rows:,}, insert threads {threads}",
                        value=result["rows_per_s"],
                        unit="rows/s",
                        reference_name=f"engine ({fmt}, median above)",
                        reference=round(engine),
                        ratio=round(result["rows_per_s"] / engine, 3),
                        target="ratio >= 0.6",
                        passed=result["rows_per_s"] / engine >= 0.6,
                        note=f"peak RSS {result['max_rss_bytes'] / GiB:.2f} GiB"
                        + (" (the defaults)" if (rows, threads) == (524_288, 2) else ""),
                    )
                )
    print("diagnostics: memory with one insert at a time; the engine's own", file=sys.stderr)
    one = {"RUNNER_INSERT_THREADS": "1"}
    for _ in range(repeat):
        run("rss small 1 thread", "el", "parquet", [small], env_vars=one)
        run("rss big 1 thread", "el", "parquet", big, env_vars=one)
        run("rss small engine", "engine", "parquet", [small])
        run("rss big engine", "engine", "parquet", big)
    for key, name, note in (
        (
            "1 thread",
            "peak RSS 10x rows, one insert at a time (diagnostic)",
            "RUNNER_INSERT_THREADS=1, to compare with two inserts at a time (the main figure)",
        ),
        (
            "engine",
            "peak RSS 10x rows, the engine's own ingestion (context)",
            "INSERT ... SELECT FROM file() of the same files: the engine alone grows more",
        ),
    ):
        big_rss = run.median(f"rss big {key}", "max_rss_bytes")
        small_rss = run.median(f"rss small {key}", "max_rss_bytes")
        figures.append(
            Figure(
                name=name,
                value=round(big_rss / GiB, 3),
                unit="GiB",
                reference_name="the same, 1x rows",
                reference=round(small_rss / GiB, 3),
                ratio=round(big_rss / small_rss, 3),
                target="ratio <= 1.15",
                passed=big_rss / small_rss <= 1.15,
                note=note,
            )
        )
    print("diagnostics: background merges paused", file=sys.stderr)
    for _ in range(repeat):
        run("engine parquet paused", "engine", "parquet", [files["parquet"]], pause_merges=True)
        run("el parquet paused", "el", "parquet", [files["parquet"]], pause_merges=True)
        run("rss small paused", "el", "parquet", [small], pause_merges=True)
        run("rss big paused", "el", "parquet", big, pause_merges=True)
    engine = run.median("engine parquet paused", "rows_per_s")
    framework = run.median("el parquet paused", "rows_per_s")
    figures.append(
        Figure(
            name="EL parquet, merges paused (diagnostic)",
            value=round(framework),
            unit="rows/s",
            reference_name="engine's own, merges paused",
            reference=round(engine),
            ratio=round(framework / engine, 3),
            target="ratio >= 0.6",
            passed=framework / engine >= 0.6,
            note="both with the table's background merges stopped: "
            "what is left is decoding and inserting",
        )
    )
    big_rss = run.median("rss big paused", "max_rss_bytes")
    small_rss = run.median("rss small paused", "max_rss_bytes")
    figures.append(
        Figure(
            name="peak RSS 10x rows, merges paused (diagnostic)",
            value=round(big_rss / GiB, 3),
            unit="GiB",
            reference_name="1x rows, merges paused",
            reference=round(small_rss / GiB, 3),
            ratio=round(big_rss / small_rss, 3),
            target="ratio <= 1.15",
            passed=big_rss / small_rss <= 1.15,
            note="background merges stopped, two inserts at a time",
        )
    )
    return figures


def startup_figures(repeat: int) -> tuple[list[Figure], dict[str, Any]]:
    """Item 4: start-up against project size (benchmarks/startup.py)."""
    print("start-up", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        figures = startup.measure(Path(tmp), repeat)
    print(f"  {figures}", file=sys.stderr)
    files, rendered = startup.RUN_FILES, startup.RENDER_FILES
    run_one = figures["run_1_file_s"]
    run_ratio = figures[f"run_ratio_{files}_vs_1"]
    listed = figures[f"list_{files}_files_s"]
    render = figures[f"render_{rendered}_pipelines_s"]
    return [
        Figure(
            name=f"`runner run` of one pipeline, {files} pipeline files",
            value=figures[f"run_{files}_files_s"],
            unit="s",
            reference_name="the same with 1 pipeline file",
            reference=run_one,
            ratio=run_ratio,
            target=f"ratio <= {startup.RUN_TARGET}",
            passed=run_ratio <= startup.RUN_TARGET,
        ),
        Figure(
            name=f"`runner list` of {files} pipelines",
            value=listed,
            unit="s",
            reference_name="`runner run`, 1 file",
            reference=run_one,
            ratio=round(listed / run_one, 3),
            target="a few seconds (<= 5 s)",
            passed=listed <= 5,
        ),
        Figure(
            name=f"`runner render` of {rendered} pipelines",
            value=render,
            unit="s",
            reference_name="`runner run`, 1 file",
            reference=run_one,
            ratio=round(render / run_one, 3),
            target="a few seconds (<= 5 s)",
            passed=render <= 5,
        ),
    ], figures


def backfill_figures(repeat: int) -> tuple[list[Figure], dict[str, Any]]:
    """Item 5: a local backfill's overhead per window (benchmarks/backfill.py)."""
    print("local backfill overhead", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        figures = backfill.measure(Path(tmp), repeat)
    print(f"  {figures}", file=sys.stderr)
    per_window = figures["per_window_overhead_ms"]
    shared, alone = figures["in_process_shared_ms"], figures["in_process_alone_ms"]
    return [
        Figure(
            name=f"local backfill: overhead per window ({figures['windows']} daily windows "
            "of a no-op pipeline, one `runner backfill run`)",
            value=per_window,
            unit="ms",
            reference_name="one `runner run` process of the same pipeline",
            reference=round(figures["runner_run_s"] * 1000, 1),
            ratio=figures["per_window_vs_runner_run"],
            target=f"<= {backfill.TARGET_MS:g} ms",
            passed=per_window <= backfill.TARGET_MS,
        ),
        Figure(
            name="local backfill in-process: a window with the shared run session",
            value=shared,
            unit="ms",
            reference_name="each window connecting, gating and scanning alone (as before)",
            reference=alone,
            ratio=round(shared / alone, 3),
            target="context",
        ),
    ], figures


def environment(args: argparse.Namespace) -> dict[str, Any]:
    import chdb
    import pyarrow

    from runner.settings import Settings

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "pyarrow": pyarrow.__version__,
        "chdb": chdb.__version__,
        "rows": args.rows,
        "repeat": args.repeat,
        **{
            name: int(
                os.environ.get(f"RUNNER_{name.upper()}") or Settings.model_fields[name].default
            )
            for name in ("batch_rows", "insert_rows", "insert_threads")
        },
        "baseline": (args.baseline_label or str(args.baseline_src)) if args.baseline_src else None,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def shown(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "rows/s":
        return f"{value:,.0f} rows/s"
    return f"{value:g} {unit}"


def outcome(figure: Figure) -> str:
    if figure.passed is None:
        return ""
    if not figure.passed:
        return "**missed**"
    if figure.goal and figure.ratio is not None and figure.ratio >= float(figure.goal.split()[-1]):
        return "pass (goal met)"
    return "pass"


def table(figures: list[Figure], *, with_before: bool, with_notes: bool = False) -> str:
    head = ["figure", "measured", "reference (same run)", "ratio", "target"]
    head += ["goal"] if any(f.goal for f in figures) else []
    head += ["before: measured / ratio"] if with_before else []
    head += ["result"] + (["note"] if with_notes else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in figures:
        reference = f"{shown(f.reference, f.unit)} ({f.reference_name})" if f.reference_name else ""
        row = [f.name, shown(f.value, f.unit), reference, f"{f.ratio:g}" if f.ratio else ""]
        row += [f.target] + ([f.goal] if "goal" in head else [])
        if with_before:
            old = ""
            if f.before:
                old = shown(f.before.get("value"), f.unit)
                ratio = f.before.get("ratio")
                old += f" / {ratio:g}" if ratio is not None else ""
            row.append(old)
        row.append(outcome(f))
        row += [f.note] if with_notes else []
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows of the data set")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--cache-dir", type=Path, default=data.default_cache_dir())
    parser.add_argument("--baseline-src", type=Path, default=None, help="a dir holding runner/")
    parser.add_argument("--baseline-label", default=None, help="what the baseline code is")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--skip-sweep", action="store_true", help="no insert size/threads sweep")
    parser.add_argument("--skip-backfill", action="store_true", help="no local backfill overhead")
    args = parser.parse_args()
    if args.baseline_src is not None and not (args.baseline_src / "runner").is_dir():
        parser.error(f"--baseline-src {args.baseline_src}: no runner package there")
    started = time.perf_counter()
    env = environment(args)
    files = data.ensure(args.cache_dir, args.rows)
    small, big = memory_files(args.cache_dir, args.rows, files["parquet"])
    run = Runner(args.baseline_src)
    figures = throughput(run, files, args.repeat)
    figures += memory(run, small, big, args.repeat)
    startup_samples: dict[str, Any] = {}
    if not args.skip_startup:
        more, startup_samples = startup_figures(max(args.repeat, 5))
        figures += more
    backfill_samples: dict[str, Any] = {}
    if not args.skip_backfill:
        more, backfill_samples = backfill_figures(args.repeat)
        figures += more
    extra = explanations(run, files, (small, big), repeat=args.repeat, sweep=not args.skip_sweep)
    env["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    env["duration_s"] = round(time.perf_counter() - started, 1)
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": env,
        "figures": [asdict(f) for f in figures],
        "explanations": [asdict(f) for f in extra],
        "samples": {**run.samples, "startup": startup_samples, "backfill": backfill_samples},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    main_table = table(figures, with_before=args.baseline_src is not None)
    extra_table = table(extra, with_before=False, with_notes=True)
    label = args.baseline_label or f"the runner package in {args.baseline_src}"
    before = f' "before" is {label}, measured in the same run.' if args.baseline_src else ""
    notes = (
        f"Generated {report['generated_at']} by `benchmarks/run_all.py` "
        f"(rows={args.rows:,}, repeat={args.repeat}: medians; RUNNER_BATCH_ROWS="
        f"{env['batch_rows']:,}, RUNNER_INSERT_ROWS={env['insert_rows']:,}, "
        f"RUNNER_INSERT_THREADS={env['insert_threads']}); {env['cpus']} CPUs, "
        f"Python {env['python']}, pyarrow {env['pyarrow']}, chDB {env['chdb']}; "
        f"load average {env['load_average_at_start']} "
        f"at the start, {env['load_average_at_end']} at the end; {env['duration_s']} s in all."
        + before
    )
    markdown = (
        f"# Benchmark report\n\n{notes}\n\n{main_table}\n\n"
        f"## Insert size, insert threads, memory and background merges\n\n{extra_table}\n"
    )
    (args.out / "report.md").write_text(markdown)
    print(f"{main_table}\n\n{extra_table}\n\n{notes}")
    print(f"written to {args.out / 'report.json'} and {args.out / 'report.md'}")


if __name__ == "__main__":
    main()
