"""One measurement in a fresh process: its own embedded warehouse, one load, one JSON line.

chDB admits one warehouse path per process and keeps engine state (caches, background
merges) for the life of the process, so every figure of the report comes from its own
process.  Cases:

* ``engine``        the engine's own ingestion: ``INSERT INTO bench SELECT * FROM file(...)``
                    through the framework's Warehouse;
* ``el``            a framework EL pipeline: read_parquet / read_csv → clickhouse_append;
* ``map_rows``      the same as ETL with a row-level Python transform;
* ``with_columns``  the same as ETL with a vectorised Arrow transform;
* ``idle``          only opens the embedded engine (its memory footprint).

The warehouse is opened and migrated before the clock starts, for the engine and the
framework alike; the framework's time is the whole ``run_pipeline`` call (lock, schema
gate, run history, the flow, state commit), as ``runner run`` does it.  The table is a
MergeTree with ``non_replicated_deduplication_window`` (what append's exactly-once needs).
``--pause-merges`` stops background merges of the table first: a diagnostic that shows
how much of a figure is the engine merging the parts the load created.

Usage: python benchmarks/workload.py CASE --workdir DIR [--data FILE ...] [--format F]
       [--pause-merges]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

from data import table_ddl  # beside this script: python puts its folder on sys.path

TABLE = "bench"
WINDOW = ("2026-01-01T00:00:00", "2026-01-02T00:00:00")
ENGINE_FORMATS = {"parquet": "Parquet", "csv": "CSVWithNames"}

PIPELINE = """import pyarrow.compute as pc

from runner import clickhouse_append, el, etl
from runner.tools.extract.files import read_csv, read_parquet
from runner.tools.transform.compute import with_columns
from runner.tools.transform.rows import map_rows

FILES = {files!r}
source = read_parquet(FILES) if {fmt!r} == "parquet" else read_csv(FILES)


def gross(row):
    row["amount"] = round(row["amount"] * 1.19, 2)
    return row


case = {case!r}
if case == "el":
    pipeline = el("bench", extract=source, load=clickhouse_append("bench"))
elif case == "map_rows":
    pipeline = etl(
        "bench", extract=source, transform=[map_rows(gross)], load=clickhouse_append("bench")
    )
else:
    pipeline = etl(
        "bench",
        extract=source,
        transform=[with_columns(amount=pc.round(pc.field("amount") * 1.19, 2))],
        load=clickhouse_append("bench"),
    )
"""


def max_rss_bytes() -> int:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def make_project(workdir: Path, case: str, fmt: str, files: list[Path]) -> Path:
    """A throw-away project: the benchmark table as a migration, one pipeline module."""
    project = workdir / "project"
    (project / "migrations").mkdir(parents=True, exist_ok=True)
    (project / "pipelines").mkdir(parents=True, exist_ok=True)
    ddl = (
        table_ddl(f"{{{{database}}}}.{TABLE}")
        + " SETTINGS non_replicated_deduplication_window = 1000"
    )
    (project / "migrations" / "0001_bench.sql").write_text(ddl + ";\n")
    if case in {"el", "map_rows", "with_columns"}:
        source = PIPELINE.format(files=[str(f) for f in files], fmt=fmt, case=case)
        (project / "pipelines" / "bench_pipeline.py").write_text(source)
    return project


def measure(
    case: str, workdir: Path, fmt: str, files: list[Path], *, pause_merges: bool = False
) -> dict[str, object]:
    """Run one case and return its figures."""
    from runner.log import configure_logging
    from runner.pipeline.discovery import Registry
    from runner.services.migrate import migrate
    from runner.services.run import run_pipeline
    from runner.settings import load_settings
    from runner.warehouse.client import Warehouse

    project = make_project(workdir, case, fmt, files)
    settings = load_settings(
        project_dir=project,
        warehouse_url=f"chdb://{workdir / 'chdb'}",
        log_format="json",
        log_level="warning",
        lock_backend="file",
    )
    with (workdir / "log.jsonl").open("a") as log_stream:
        configure_logging(settings, stream=log_stream)
        if case == "idle":
            warehouse = Warehouse.connect(settings, ensure_database=True)
            warehouse.query_rows("SELECT 1")
            warehouse.close()
            return {"case": case, "max_rss_bytes": max_rss_bytes()}
        migrate(settings)
        warehouse = Warehouse.connect(settings)
        if pause_merges:  # diagnostic: leave out the background merging of the new parts
            warehouse.command(f"SYSTEM STOP MERGES {TABLE}")
        started = time.perf_counter()
        if case == "engine":
            for path in files:
                warehouse.command(
                    f"INSERT INTO {TABLE} SELECT * FROM file('{path}', {ENGINE_FORMATS[fmt]})"
                )
            batches = None
        else:
            result = run_pipeline(
                settings,
                Registry(settings.pipelines_path),
                "bench",
                **window_arguments(run_pipeline),
            )
            batches = result.steps["bench"].batches
        seconds = time.perf_counter() - started
        rows = int(warehouse.query_rows(f"SELECT count() FROM {TABLE}")[0][0])
        warehouse.close()
    return {
        "case": case,
        "format": fmt,
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds),
        "batches": batches,
        "batch_rows": settings.batch_rows,
        "merges_paused": pause_merges,
        "max_rss_bytes": max_rss_bytes(),
    }


def window_arguments(run_pipeline) -> dict:
    """The window as the measured code takes it: a Window now, ISO strings before."""
    import inspect

    if "window" not in inspect.signature(run_pipeline).parameters:  # --baseline-src code
        return {"start": WINDOW[0], "end": WINDOW[1]}
    from datetime import UTC, datetime

    from runner.pipeline.windows import Window

    start, end = (datetime.fromisoformat(t).replace(tzinfo=UTC) for t in WINDOW)
    return {"window": Window(start, end)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("case", choices=["engine", "el", "map_rows", "with_columns", "idle"])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--format", choices=sorted(ENGINE_FORMATS), default="parquet")
    parser.add_argument("--data", type=Path, nargs="*", default=[])
    parser.add_argument("--pause-merges", action="store_true", help="diagnostic only")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(args.workdir)
    files = [p.absolute() for p in args.data]  # not resolved: links name distinct files
    figures = measure(args.case, args.workdir, args.format, files, pause_merges=args.pause_merges)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
