"""Peak memory of ``http_json`` against a gzip bomb and a large genuine page.

A local server on 127.0.0.1 serves three responses; each is read by ``http_json`` in a
fresh process whose peak RSS (VmHWM) is reported:

* ``ok``: two records (what the process costs with nothing to read);
* ``bomb``: about 1 MB of gzip expanding to 1 GiB of JSON (``[``, spaces, ``]``);
* ``page``: a genuine gzip page of 40 MiB of JSON (300,000 records), below the 64 MiB cap.

``--baseline-src DIR`` also measures the runner package found in DIR (e.g. a checkout of
the code before a change), reported as "before".

Usage: python benchmarks/http_memory.py [--baseline-src DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MiB = 1 << 20
BOMB_MIB = 1024
PAGE_RECORDS = 300_000

PROBE = """
import json, sys, time
from datetime import UTC, datetime
from runner.errors import RunnerError
from runner.log import get_logger
from runner.pipeline.context import RunContext, RunResources
from runner.pipeline.windows import Window
from runner.settings import Settings
from runner.tools.extract.http import http_json

window = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
ctx = RunContext(pipeline="probe", run_id="probe", window=window, settings=Settings(),
                 resources=RunResources(connect=lambda: None), log=get_logger())
rows, error, started = 0, None, time.monotonic()
try:
    for page in http_json(sys.argv[1], timeout=120).extract(ctx):
        rows += len(page)
except RunnerError as exc:
    error = str(exc)
peak = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024
print(json.dumps({"rows": rows, "error": error, "peak_rss": peak,
                  "seconds": round(time.monotonic() - started, 2)}))
"""


def bodies() -> dict[str, bytes]:
    """The three responses, gzip-compressed except ``ok``."""
    spaces = b" " * MiB
    bomb = (
        gzip.compress(b"[" + spaces[1:], 9)
        + gzip.compress(spaces, 9) * (BOMB_MIB - 2)
        + gzip.compress(spaces[1:] + b"]", 9)
    )
    records = [{"id": i, "text": f"record {i:09d} " * 8} for i in range(PAGE_RECORDS)]
    page = gzip.compress(json.dumps(records).encode(), 6)
    return {"/ok": b'[{"id": 1}, {"id": 2}]', "/bomb": bomb, "/page": page}


def serve(responses: dict[str, bytes]) -> ThreadingHTTPServer:
    """The responses on a free port of 127.0.0.1, in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            data = responses[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if self.path != "/ok":
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except OSError:  # the client stopped reading at its cap
                self.close_connection = True

        def handle(self) -> None:
            with contextlib.suppress(ConnectionError):  # a client that stopped at its cap
                super().handle()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def measure(url: str, src: str | None) -> dict[str, Any]:
    """One fresh process reading ``url``; ``src`` puts another runner package first."""
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    done = subprocess.run(
        [sys.executable, "-c", PROBE, url],
        capture_output=True,
        text=True,
        env=env,
        cwd=tempfile.gettempdir(),  # no project .env in the way
        timeout=600,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Measure, print a table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", help="a directory holding the runner package to compare")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    responses = bodies()
    server = serve(responses)
    port = server.server_address[1]
    figures: list[dict[str, Any]] = []
    try:
        for name in ("ok", "bomb", "page"):
            for label, src in (("before", args.baseline_src), ("after", None)):
                if label == "before" and not src:
                    continue
                result = measure(f"http://127.0.0.1:{port}/{name}", src)
                figures.append({"case": name, "code": label, **result})
    finally:
        server.shutdown()
    print(f"{'case':<6} {'code':<7} {'peak RSS':>10} {'rows':>8} {'seconds':>8}  error")
    for f in figures:
        error = (f["error"] or "")[:90]
        print(
            f"{f['case']:<6} {f['code']:<7} {f['peak_rss'] / MiB:>7.0f} MiB {f['rows']:>8} "
            f"{f['seconds']:>8}  {error}"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
