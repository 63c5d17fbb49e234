"""`make bench-http`: EL over HTTP against the embedded figure and the engine's own ingestion.

In a cluster every insert goes through clickhouse-connect's HTTP transport; on a laptop
and in ``make bench`` it goes straight into the embedded engine.  This measures the HTTP
path on the same data, in the same run, next to its two references:

1. the framework's embedded EL (``workload.py el``): target HTTP >= 0.7 of it;
2. the engine's own ``INSERT ... SELECT FROM file()`` (``workload.py engine``).

The server is the loopback ClickHouse server of the HTTP test suite
(tests/http/clickhouse_http_server.py): the HTTP framing in Python, every statement on
chDB in the server's own process (a fresh server and chDB directory per measurement, as
every embedded figure gets a fresh process).  Both processes share the machine's cores,
as a client and a server would not in a cluster; the server's Python framing (receiving a
body, handing it to the engine) is extra work a real server does in C++.

Compression is on: the client's default (``lz4``: Arrow IPC buffers compressed with LZ4)
and ``zstd``; ``none`` is measured as a reference.  Where the time goes comes from the
server's request log (seconds receiving bodies, seconds in the engine's insert) and the
client's CPU time.

Usage: python benchmarks/over_http.py [--rows N] [--repeat N] [--out DIR] [--cache-dir DIR]
       [--compress default,zstd,none] [--tls] [--render http.json]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import data  # beside this script
from run_all import Figure, GiB, Runner, table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "http"))
from loopback_process import start_loopback  # noqa: E402 - the test suite's server

FORMATS = ("parquet", "csv")
TARGET = 0.7


def run_http(fmt: str, files: dict[str, Path], compress: str, *, tls: bool) -> dict[str, Any]:
    """One HTTP measurement: a fresh server, a fresh client process."""
    password = secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        tls_files = None
        if tls:
            from loopback_certs import make_tls_files

            tls_files = make_tls_files(Path(tmp) / "tls")
        server = start_loopback(Path(tmp) / "server", password=password, tls=tls_files)
        try:
            env = dict(os.environ)
            if tls_files is not None:
                env["RUNNER_TLS_CA_CERT"] = str(tls_files.ca_cert)
            command = [
                sys.executable,
                str(HERE / "http_workload.py"),
                "--url",
                server.url("bench"),
                "--password",
                password,
                "--control",
                f"{server.scheme}://127.0.0.1:{server.port}",
                "--workdir",
                str(Path(tmp) / "client"),
                "--format",
                fmt,
                "--data",
                str(files[fmt]),
                "--compress",
                compress,
            ]
            if tls_files is not None:  # the control endpoint speaks TLS too
                env["SSL_CERT_FILE"] = str(tls_files.ca_cert)
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=900, check=False
            )
            if done.returncode:
                raise SystemExit(f"http {fmt} {compress} failed:\n{done.stderr[-3000:]}")
            server_rss = _rss_of(server.process.pid)
        finally:
            server.stop()
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["server_max_rss_bytes"] = server_rss
    speed = f"{result['rows_per_s']:>12,} rows/s {result['seconds']:>7.2f} s"
    print(f"  http {fmt} {compress:<8} {speed}", file=sys.stderr)
    return result


def _rss_of(pid: int) -> int:
    """Peak RSS of a running process (VmHWM), 0 if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def paired_ratio(samples: dict[str, list[dict[str, Any]]], key: str, reference: str) -> float:
    """Median over repeats of (value / reference of the same repeat).

    Each repeat runs the cases one after another, so a ratio within a repeat shares the
    machine's load of that moment; under a drifting load (other work on the machine) it
    is steadier than the ratio of two medians.
    """
    pairs = zip(samples[key], samples[reference], strict=False)
    return float(statistics.median(a["rows_per_s"] / b["rows_per_s"] for a, b in pairs))


def render(report: dict[str, Any], out: Path) -> str:
    """Figures and explanations from a report's samples; writes http.md and http.json."""
    samples: dict[str, list[dict[str, Any]]] = report["samples"]
    env = report["environment"]
    tls = "S" if env.get("tls") else ""

    def median(key: str, field: str) -> float:
        return float(statistics.median(s[field] for s in samples[key]))

    figures: list[Figure] = []
    explain: list[Figure] = []
    for fmt in FORMATS:
        embedded = median(f"el {fmt}", "rows_per_s")
        engine = median(f"engine {fmt}", "rows_per_s")
        for choice in env["compress"]:
            key = f"http {fmt} {choice}"
            value = median(key, "rows_per_s")
            paired = paired_ratio(samples, key, f"el {fmt}")
            label = "client default, lz4" if choice == "default" else choice
            figures.append(
                Figure(
                    name=f"EL {fmt} over HTTP{tls} ({label})",
                    value=round(value),
                    unit="rows/s",
                    reference_name=f"embedded EL {fmt}",
                    reference=round(embedded),
                    ratio=round(value / embedded, 3),
                    target=f"ratio >= {TARGET}",
                    passed=value / embedded >= TARGET,
                    note=f"paired ratio (median over repeats) {paired:.2f}; "
                    f"{value / engine:.2f} of the engine's own ingestion ({engine:,.0f} rows/s)",
                )
            )
            seconds = median(key, "seconds")
            explain.append(
                Figure(
                    name=f"{fmt} {label}: where the {seconds:.2f} s go",
                    value=round(median(key, "engine_seconds"), 2),
                    unit="s in the engine's inserts",
                    note=(
                        f"receiving bodies {median(key, 'receive_seconds'):.2f} s; "
                        f"client CPU {median(key, 'client_cpu_seconds'):.2f} s; "
                        f"{median(key, 'inserts'):.0f} inserts, "
                        f"{median(key, 'body_bytes') / (1 << 20):.0f} MiB of bodies; "
                        f"client peak RSS {median(key, 'max_rss_bytes') / GiB:.2f} GiB, "
                        f"server {median(key, 'server_max_rss_bytes') / GiB:.2f} GiB"
                    ),
                )
            )
    report["figures"] = [asdict(f) for f in figures]
    report["explanations"] = [asdict(f) for f in explain]
    out.mkdir(parents=True, exist_ok=True)
    (out / "http.json").write_text(json.dumps(report, indent=2) + "\n")
    main_table = table(figures, with_before=False, with_notes=True)
    extra_table = table(explain, with_before=False, with_notes=True)
    notes = (
        f"Generated {report['generated_at']} by `benchmarks/over_http.py` "
        f"(rows={env['rows']:,}, repeat={env['repeat']}: medians; {env['cpus']} CPUs shared "
        f"by the client and the server; load average {env['load_average_at_start']} at the "
        f"start, {env['load_average_at_end']} at the end; {env['duration_s']} s in all)."
    )
    markdown = (
        f"# EL over HTTP\n\n{notes}\n\n{main_table}\n\n## Where the time goes\n\n{extra_table}\n"
    )
    (out / "http.md").write_text(markdown)
    return f"{main_table}\n\n{extra_table}\n\n{notes}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--cache-dir", type=Path, default=data.default_cache_dir())
    parser.add_argument("--compress", default="default,zstd,none")
    parser.add_argument("--tls", action="store_true", help="HTTPS with a CA made for the run")
    parser.add_argument(
        "--render", type=Path, default=None, help="only re-render the tables of an http.json"
    )
    args = parser.parse_args()
    if args.render is not None:
        report = json.loads(args.render.read_text())
        report["environment"].setdefault("compress", ["default", "zstd", "none"])
        print(render(report, args.out))
        return
    choices = args.compress.split(",")
    started = time.perf_counter()
    load_start = [round(x, 2) for x in os.getloadavg()]
    files = data.ensure(args.cache_dir, args.rows)
    run = Runner(None)
    http: dict[str, list[dict[str, Any]]] = {}
    for _ in range(args.repeat):  # alternate, so load drifts hit every case alike
        for fmt in FORMATS:
            run(f"engine {fmt}", "engine", fmt, [files[fmt]])
            run(f"el {fmt}", "el", fmt, [files[fmt]])
            for choice in choices:
                http.setdefault(f"http {fmt} {choice}", []).append(
                    run_http(fmt, files, choice, tls=args.tls)
                )
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": {
            "rows": args.rows,
            "repeat": args.repeat,
            "cpus": os.cpu_count(),
            "tls": args.tls,
            "compress": choices,
            "load_average_at_start": load_start,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "duration_s": round(time.perf_counter() - started, 1),
        },
        "samples": {**run.samples, **http},
    }
    print(render(report, args.out))


if __name__ == "__main__":
    main()
