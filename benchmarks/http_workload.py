"""One EL measurement over HTTP, in a fresh process: the framework against a loopback server.

The same project, pipeline and table as ``workload.py``'s ``el`` case, but the warehouse is
``http://...`` on a loopback ClickHouse server (tests/http/clickhouse_http_server.py: the
HTTP framing in Python, the statements on chDB in the server's own process), so every
insert goes through clickhouse-connect's HTTP transport as it does against a cluster.

``--compress`` picks clickhouse-connect's ``compress`` option for this run (the runner has
no setting for it: it uses the client's default, ``lz4``).  For ``insert_arrow`` it sets
the Arrow IPC buffer compression of the insert body (lz4 or zstd; none with ``none``).

Prints one JSON line: rows, seconds, rows/s, and where the server's time went (receiving
bodies, inside the engine) summed over the load's inserts, from the server's request log.

Usage: python benchmarks/http_workload.py --url URL --password P --control URL --workdir DIR
       --format parquet|csv --data FILE [--compress default|lz4|zstd|none]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
import urllib.request
from pathlib import Path

from workload import TABLE, make_project, window_arguments  # beside this script


def _patch_compression(choice: str) -> None:
    """Make the runner's clickhouse-connect clients use ``choice`` (default: leave it)."""
    if choice == "default":
        return
    import clickhouse_connect

    original = clickhouse_connect.get_client
    value: bool | str = False if choice == "none" else choice

    def get_client(**kwargs: object) -> object:
        return original(**{**kwargs, "compress": value})

    clickhouse_connect.get_client = get_client


def server_seconds(control: str, table: str) -> dict[str, float]:
    """Receiving and engine seconds, and body bytes, of the inserts into ``table``."""
    with urllib.request.urlopen(f"{control}/__loopback__/requests", timeout=30) as response:  # noqa: S310 - loopback
        requests = json.loads(response.read())
    inserts = [r for r in requests if f"`{table}`" in (r.get("sql") or "") and r.get("bytes")]
    return {
        "inserts": len(inserts),
        "body_bytes": sum(r["bytes"] for r in inserts),
        "receive_seconds": round(sum(r["seconds"].get("body", 0) for r in inserts), 3),
        "engine_seconds": round(sum(r["seconds"].get("engine", 0) for r in inserts), 3),
    }


def measure(
    url: str,
    *,
    password: str,
    control: str,
    workdir: Path,
    fmt: str,
    files: list[Path],
    compress: str,
) -> dict[str, object]:
    """Migrate, clear the server's request log, run the EL pipeline, count."""
    from runner.log import configure_logging
    from runner.pipeline.discovery import Registry
    from runner.services.migrate import migrate
    from runner.services.run import run_pipeline
    from runner.settings import load_settings
    from runner.warehouse.client import Warehouse

    _patch_compression(compress)
    project = make_project(workdir, "el", fmt, files)
    settings = load_settings(
        project_dir=project,
        warehouse_url=url,
        clickhouse_password=password,
        log_format="json",
        log_level="warning",
        lock_backend="file",
        lock_dir=workdir / "locks",
    )
    with (workdir / "log.jsonl").open("a") as log_stream:
        configure_logging(settings, stream=log_stream)
        migrate(settings)
        warehouse = Warehouse.connect(settings)
        clear = urllib.request.Request(f"{control}/__loopback__/requests", method="DELETE")  # noqa: S310 - loopback
        urllib.request.urlopen(clear, timeout=30).close()  # noqa: S310 - loopback
        started = time.perf_counter()
        cpu_started = time.process_time()
        result = run_pipeline(
            settings, Registry(settings.pipelines_path), "bench", **window_arguments(run_pipeline)
        )
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        rows = int(warehouse.query_rows(f"SELECT count() FROM {TABLE}")[0][0])
        warehouse.close()
    return {
        "case": "http",
        "format": fmt,
        "compress": compress,
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds),
        "client_cpu_seconds": round(cpu, 3),
        "batches": result.steps["bench"].batches,
        "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        **server_seconds(control, TABLE),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--password", default="")
    parser.add_argument("--control", required=True, help="the server's base URL (no user)")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    parser.add_argument("--data", type=Path, nargs="+", required=True)
    parser.add_argument("--compress", choices=["default", "lz4", "zstd", "none"], default="default")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(args.workdir)
    files = [p.absolute() for p in args.data]
    figures = measure(
        args.url,
        password=args.password,
        control=args.control,
        workdir=args.workdir,
        fmt=args.format,
        files=files,
        compress=args.compress,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
