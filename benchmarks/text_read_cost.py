"""What reading clean and damaged text files costs (extract/file_source.py, file_blocks.py).

The CSV and JSON Lines readers parse a file block by block.  This measures extracting a
file of ``--rows`` rows as a run does (no warehouse: the batches are only counted):

* ``jsonl_clean`` / ``csv_clean``   a clean file, the fast path;
* ``jsonl_bad`` / ``csv_bad``       the same file with one bad row in ten thousand
                                   (rejected to a sink that keeps them), the recovery path.

Each figure is the median of ``--repeat`` runs, in seconds.  Usage:
python benchmarks/text_read_cost.py [--rows N] [--repeat N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.pipeline.context import RunContext


def write_jsonl(path: Path, rows: int, *, bad_every: int | None) -> None:
    with path.open("w") as out:
        for i in range(rows):
            record = {
                "id": i,
                "email": f"user{i}@example.com",
                "ts": f"2026-01-01T{i % 24:02d}:{i % 60:02d}:00Z",
                "amount": i * 1.5,
                "country": ["DE", "FR", "US"][i % 3],
            }
            if bad_every and i % bad_every == bad_every // 2:
                record["id"] = f"bad-{i}"
            out.write(json.dumps(record) + "\n")


def write_csv(path: Path, rows: int, *, bad_every: int | None) -> None:
    with path.open("w") as out:
        out.write("id,email,ts,amount,country\n")
        for i in range(rows):
            ident = f"bad-{i}" if bad_every and i % bad_every == bad_every // 2 else str(i)
            country = ["DE", "FR", "US"][i % 3]
            out.write(
                f"{ident},user{i}@example.com,2026-01-01T{i % 24:02d}:{i % 60:02d}:00Z,"
                f"{i * 1.5},{country}\n"
            )


def median(repeat: int, work: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class _Sink:
    """Keeps the count of rejected rows, as a quarantine would take them."""

    takes_rejected = True

    def __init__(self) -> None:
        self.count = 0

    def take_rejected(self, ctx: object, rows: list[Any], reasons: list[str], step: str) -> None:
        del ctx, reasons, step
        self.count += len(rows)

    def check_rejected(self, ctx: object) -> None:
        del ctx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import pyarrow as pa
    import structlog

    from runner.log import get_logger
    from runner.pipeline.context import RunContext, RunResources
    from runner.pipeline.windows import Window
    from runner.settings import Settings
    from runner.tools.extract.files import read_csv, read_jsonl

    settings = Settings()
    window = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    schema = pa.schema([("id", pa.int64()), ("email", pa.string()), ("ts", pa.string())])
    types = {"id": pa.int64()}
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    def context() -> RunContext:
        ctx = RunContext(
            pipeline="bench",
            run_id="bench",
            window=window,
            settings=settings,
            resources=RunResources(connect=lambda: None),  # type: ignore[arg-type,return-value]
            log=get_logger(),
            cancel=threading.Event(),
        )
        ctx.reject_sink = _Sink()
        return ctx

    def count(source: Any) -> Callable[[], int]:
        return lambda: sum(b.num_rows for b in source.extract(context()))

    results: dict[str, Any] = {"rows": args.rows}
    with tempfile.TemporaryDirectory() as folder:
        for kind, write, read in (("jsonl", write_jsonl, read_jsonl), ("csv", write_csv, read_csv)):
            for case, bad_every in (("clean", None), ("bad", 10_000)):
                path = Path(folder) / f"{case}.{kind}"
                write(path, args.rows, bad_every=bad_every)
                options: dict[str, Any] = {}
                if case == "bad":  # the bad rows' type must be known, not inferred
                    options = {"schema": schema} if kind == "jsonl" else {"column_types": types}
                loaded = count(read(str(path), **options))()
                expected = args.rows - (args.rows // bad_every if bad_every else 0)
                if loaded != expected:
                    raise SystemExit(f"{kind} {case}: {loaded} rows, expected {expected}")
                results[f"{kind}_{case}"] = median(args.repeat, count(read(str(path), **options)))
                results[f"{kind}_bytes"] = path.stat().st_size
    text = json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()})
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
