"""Quarantined JSON Lines rows are stored as their own line held them, never as another's.

The quarantine reads a rejected row's line again (an Arrow batch cannot tell a missing
key from a null).  Finding that line by counting rows broke as soon as the reader could
drop rows: rows outside the window (``time_column=``), lines the line-by-line recovery
rejected, zip members, window templates, blank lines.  Each test puts rows before the
offending one that counting would miscount, so that counting would store another row's
record (one holding every key the offending row has, so no key check catches it), and
asserts that the stored record is exactly the offending line's object.  The flows run
in-process on the embedded ClickHouse.
"""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import BaseModel

from runner import etl
from runner.pipeline.context import QUARANTINE_TABLE
from runner.pipeline.windows import Window
from runner.tools.extract.files import read_jsonl
from runner.tools.transform.validate import validate


class Person(BaseModel):
    id: int
    email: str
    ts: datetime


def person(i: int, day: int = 1, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": i,
        "email": f"p{i}@example.com",
        "ts": f"2026-01-{day:02d}T{i % 24:02d}:00:00Z",
    }
    row.update(changes)
    return row


def lines(*rows: dict[str, object] | str) -> bytes:
    """JSON lines; a string is written as it is (a broken line, a blank one)."""
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def no_email(i: int, day: int = 1) -> dict[str, object]:
    """An invalid row: the key is missing (a batch would hold it as null)."""
    row = person(i, day)
    del row["email"]
    return row


class Collect:
    def __init__(self) -> None:
        self.ids: list[int] = []

    def __call__(self, batch: pa.RecordBatch) -> None:
        self.ids.extend(batch.column("id").to_pylist())


def run_flow(make_context, source, **context) -> tuple[list[int], str]:
    loaded = Collect()
    flow = etl(
        "people",
        extract=source,
        transform=[validate(Person, on_error="skip", max_invalid=10)],
        load=loaded,
    )
    ctx = make_context(pipeline="people", **context)
    flow.run(ctx)
    return loaded.ids, ctx.run_id


def stored(warehouse, run_id: str, step: str = "people.validate") -> list[tuple[dict, str]]:
    rows = warehouse.query_rows(
        f"SELECT record, reason FROM {QUARANTINE_TABLE} "
        "WHERE run_id = {r:String} AND step = {s:String} ORDER BY record",
        {"r": run_id, "s": step},
    )
    return [(json.loads(record), reason) for record, reason in rows]


def test_rows_outside_the_window_before_the_bad_one(tmp_path, make_context, warehouse):
    path = tmp_path / "people.jsonl"
    path.write_bytes(
        lines(
            *[person(i, day=31 if i < 40 else 1) for i in range(40)],  # 0-39 of Dec 31: out
            person(40),
            "",
            no_email(41),
            person(42),
        ).replace(b"2026-01-31", b"2025-12-31")
    )
    source = read_jsonl(str(path), time_column="ts")

    ids, run_id = run_flow(make_context, source)

    assert ids == [40, 42]
    # counting rows of the run would take run row 1 for record 1: person 1 (out of window)
    assert stored(warehouse, run_id) == [(no_email(41), "email: Field required")]


def test_a_row_without_a_time_is_stored_as_its_line(tmp_path, make_context, warehouse):
    """A row the window filter rejects keeps its keys too (the batch has ``ts`` null)."""
    path = tmp_path / "people.jsonl"
    late = person(9)
    del late["ts"]
    path.write_bytes(lines(*[person(i, day=2) for i in range(5)], person(5), "", late, person(6)))
    source = read_jsonl(str(path), time_column="ts")

    ids, run_id = run_flow(make_context, source)

    assert ids == [5, 6]
    [(record, reason)] = stored(warehouse, run_id, step="people.read_jsonl")
    assert record == late
    assert reason.endswith("'ts' is empty: the row belongs to no window")


@pytest.mark.parametrize("block_size", [4096, 1 << 20])  # bad line after or in the first block
def test_rows_after_a_line_the_reader_rejected(tmp_path, make_context, warehouse, block_size):
    path = tmp_path / "people.jsonl"
    before = [person(i) for i in range(100)]
    path.write_bytes(
        lines(*before, "{not json", "", person(100), "   ", no_email(101), person(102))
    )
    source = read_jsonl(str(path), block_size=block_size)

    ids, run_id = run_flow(make_context, source)

    assert ids == [*range(101), 102]
    assert stored(warehouse, run_id) == [(no_email(101), "email: Field required")]
    [(record, reason)] = stored(warehouse, run_id, step="people.read_jsonl")
    assert record == {"text": "{not json"}
    assert reason.startswith(f"JSONL file {path}: line 101: is not JSON")


def test_rows_of_a_zip_member(tmp_path, make_context, warehouse):
    path = tmp_path / "people.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.jsonl", lines(*[person(i) for i in range(30)]))
        archive.writestr("b.jsonl", lines(person(30), "", person(31), no_email(32), person(33)))
    source = read_jsonl(str(path), filename_column="file")

    ids, run_id = run_flow(make_context, source)

    assert ids == [*range(32), 33]
    expected = {**no_email(32), "file": f"{path}!b.jsonl"}
    assert stored(warehouse, run_id) == [(expected, "email: Field required")]


def test_rows_of_a_window_template(tmp_path, make_context, warehouse, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for day in range(1, 6):  # files of days outside the window are never read nor counted
        folder = tmp_path / f"data/2026/01/{day:02d}"
        folder.mkdir(parents=True)
        rows = [person(day * 100 + i, day=day) for i in range(20)]
        if day == 3:
            rows[7] = no_email(307, day=3)
            rows[2:5] = [person(90 + i, day=1) for i in range(3)]  # late rows: another window
        (folder / "people.jsonl").write_bytes(lines("", *rows))
    window = Window(datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 4, tzinfo=UTC))
    source = read_jsonl("data/{window_start:%Y/%m/%d}/people.jsonl", time_column="ts")

    ids, run_id = run_flow(make_context, source, window=window)

    assert ids == [*range(200, 220), 300, 301, 305, 306, *range(308, 320)]
    assert stored(warehouse, run_id) == [(no_email(307, day=3), "email: Field required")]


def test_a_line_holding_two_objects_is_rejected_and_later_rows_keep_their_lines(
    tmp_path, make_context, warehouse
):
    """pyarrow reads two objects on one line as two rows, so rows and lines part there.

    The reader refuses such a line (JSON Lines is one value per line): it is quarantined
    as its text, and the row without an email after it is still stored as its own line
    (not as the next line's object, which has the same values with an explicit null).
    """
    path = tmp_path / "people.jsonl"
    two = json.dumps(person(0)) + " " + json.dumps(person(1))
    path.write_bytes(lines(two, no_email(2), person(2, email=None), person(3)))
    source = read_jsonl(str(path))

    ids, run_id = run_flow(make_context, source)

    assert ids == [3]
    [(record, reason)] = stored(warehouse, run_id, step="people.read_jsonl")
    assert record == {"text": two}
    assert reason.endswith(
        "line 1: holds more than one JSON value (JSON Lines has one value per line)"
    )
    assert sorted(stored(warehouse, run_id), key=lambda r: r[1]) == [
        (no_email(2), "email: Field required"),
        (person(2, email=None), "email: Input should be a valid string"),
    ]


def test_a_file_changed_since_it_was_read_gives_no_record(tmp_path, make_context, warehouse):
    path = tmp_path / "people.jsonl"
    path.write_bytes(lines(person(0), no_email(1), person(2)))
    changed: list[Path] = []

    class ChangeTheFile:
        """Rewrites the file (same size) between the read and the quarantine."""

        name = "change"

        def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
            if not changed:
                path.write_bytes(lines(person(7), no_email(8), person(9)))
                changed.append(path)
            return batch

    loaded = Collect()
    flow = etl(
        "people",
        extract=read_jsonl(str(path)),
        transform=[ChangeTheFile(), validate(Person, on_error="skip")],
        load=loaded,
    )
    ctx = make_context(pipeline="people")
    flow.run(ctx)

    assert loaded.ids == [0, 2]
    [(record, _)] = stored(warehouse, ctx.run_id)
    assert record["id"] == 1  # never person 8 of the new content
