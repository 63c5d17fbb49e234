"""What keeping JSON Lines records for the quarantine costs (extract/source_records.py).

``read_jsonl`` notes each row's entry and record number so that a quarantined row can be
stored as its line held it.  This measures, on a JSON Lines file of ``--rows`` rows:

* ``read``        extracting the whole file as a run does, with the numbers kept;
* ``read_plain``  the same without them (the reader with ``keeps_records`` off);
* ``read_window`` with ``time_column=`` keeping half the rows (numbers filtered too);
* ``lookup_last`` finding the record of the file's last row once it is read: the
                  quarantine path at its worst (the whole file parsed again by Python's
                  ``json`` to prove every line before holds one object).

Each figure is the median of ``--repeat`` runs, in seconds.  Usage:
python benchmarks/source_records_cost.py [--rows N] [--repeat N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
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


def write_file(path: Path, rows: int) -> None:
    with path.open("w") as out:
        for i in range(rows):
            hour = "01" if i % 2 else "02"  # half the rows in the window below
            day = "01" if i % 4 < 2 else "02"
            record = {
                "id": i,
                "email": f"user{i}@example.com",
                "ts": f"2026-01-{day}T{hour}:{i % 60:02d}:00Z",
                "amount": i * 1.5,
                "tags": ["a", "b"],
            }
            out.write(json.dumps(record) + "\n")


def median(repeat: int, work: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from runner.log import get_logger
    from runner.pipeline.context import RunContext, RunResources
    from runner.pipeline.windows import Window
    from runner.settings import Settings
    from runner.tools.extract.files import JsonLinesSource, read_jsonl

    class Plain(JsonLinesSource):
        keeps_records = False

    settings = Settings()
    window = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))

    def context() -> RunContext:
        return RunContext(
            pipeline="bench",
            run_id="bench",
            window=window,
            settings=settings,
            resources=RunResources(connect=lambda: None),  # type: ignore[arg-type,return-value]
            log=get_logger(),
            cancel=threading.Event(),
        )

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.jsonl"
        write_file(path, args.rows)

        def read(source: JsonLinesSource) -> Callable[[], Any]:
            return lambda: sum(b.num_rows for b in source.extract(context()))

        results = {
            "rows": args.rows,
            "bytes": path.stat().st_size,
            "read": median(args.repeat, read(read_jsonl(str(path)))),
            "read_plain": median(args.repeat, read(Plain(str(path)))),
            "read_window": median(args.repeat, read(read_jsonl(str(path), time_column="ts"))),
        }

        def lookup() -> None:
            source = read_jsonl(str(path))
            ctx = context()
            rows, last = 0, None
            for batch in source.extract(ctx):
                rows, last = rows + batch.num_rows, batch
            if last is None:
                raise SystemExit("no rows read")
            found = source.source_records(ctx, [rows - 1], last.slice(last.num_rows - 1, 1))
            if found.get(rows - 1, {}).get("id") != args.rows - 1:
                raise SystemExit(f"the last record was not found: {found}")

        read_time = results["read"]
        results["lookup_last"] = median(args.repeat, lookup) - read_time
    text = json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()})
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    sys.exit(0)


if __name__ == "__main__":
    main()
