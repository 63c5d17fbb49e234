"""Regression tests for the text readers' recovery after a row that does not fit.

The finding: after a row-level error the reader went on "after the rows pyarrow had
read" by skipping as many non-blank lines.  pyarrow's JSON reader also takes two objects
on one line, or one object over two lines, so rows and lines parted: 200 objects with
two on the first line and a bad line at 150, read with ``block_size=512``, loaded 199
rows, rejected 1, and id 137 was neither loaded nor rejected (other layouts doubled
rows).  Now a file is read in blocks of whole lines and only a failing block is read
again line by line; JSON Lines is strict (a line holding two values or part of one is
rejected, naming its line); a CSV row over several lines is refused.

Every layout generated below (objects joined on a line or split over two, blank lines,
CRLF or CR line ends, a byte order mark, bad rows at block edges, small blocks) must
give every input row exactly once: loaded, or rejected with the line that holds it.
The extraction runs in-process (no warehouse needed to read files); one test goes
through a real flow into the embedded ClickHouse's quarantine.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from runner import etl
from runner.errors import FatalError
from runner.log import get_logger
from runner.pipeline.context import QUARANTINE_TABLE, RunContext, RunResources
from runner.pipeline.windows import Window
from runner.settings import Settings
from runner.tools.extract.files import read_csv, read_jsonl
from runner.tools.transform.validate import validate

BOM = b"\xef\xbb\xbf"
SCHEMA = pa.schema([("id", pa.int64()), ("v", pa.int64())])
ID_IN_JSON = re.compile(r'"id": ?(\d+)')
LINE = re.compile(r": line (\d+): ")


class Sink:
    """Keeps the rows a reader rejects, as ``validate(on_error="skip")`` would."""

    takes_rejected = True

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.reasons: list[str] = []

    def take_rejected(
        self, ctx: object, rows: list[dict[str, Any]], reasons: list[str], step: str
    ) -> None:
        del ctx, step
        self.rows.extend(rows)
        self.reasons.extend(reasons)

    def check_rejected(self, ctx: object) -> None:
        del ctx


def context() -> tuple[RunContext, Sink]:
    window = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    ctx = RunContext(
        pipeline="recovery",
        run_id="recovery",
        window=window,
        settings=Settings(),
        resources=RunResources(connect=lambda: None),  # type: ignore[arg-type,return-value]
        log=get_logger(),
        cancel=threading.Event(),
    )
    sink = Sink()
    ctx.reject_sink = sink
    return ctx, sink


@dataclass
class Outcome:
    loaded: list[int]
    rejected: dict[int, int] = field(default_factory=dict)  # id -> line named
    batches: list[pa.RecordBatch] = field(default_factory=list)


def extract(source: Any, ctx: RunContext, sink: Sink, ids_of) -> Outcome:
    batches = list(source.extract(ctx))
    loaded = [i for batch in batches for i in batch.column("id").to_pylist()]
    outcome = Outcome(loaded, batches=batches)
    for row, reason in zip(sink.rows, sink.reasons, strict=True):
        line = LINE.search(reason)
        assert line is not None, reason
        for ident in ids_of(row):
            assert ident not in outcome.rejected, f"id {ident} rejected twice"
            outcome.rejected[ident] = int(line.group(1))
    return outcome


def assert_each_row_once(outcome: Outcome, count: int) -> None:
    """Every id loaded once or rejected once: none lost, none doubled, file order kept."""
    assert len(outcome.loaded) == len(set(outcome.loaded)), "a row was loaded twice"
    assert outcome.loaded == sorted(outcome.loaded), "rows out of file order"
    both = set(outcome.loaded) & set(outcome.rejected)
    assert not both, f"loaded and rejected: {sorted(both)}"
    lost = set(range(count)) - set(outcome.loaded) - set(outcome.rejected)
    assert not lost, f"neither loaded nor rejected: {sorted(lost)}"


# --- JSON Lines --------------------------------------------------------------------------


@dataclass(frozen=True)
class JsonRow:
    bad: bool  # a value the schema refuses
    joined: bool  # shares its line with the row before it
    split: bool  # spread over two lines
    gap: bytes  # line break(s) after the row: "\n", "\r\n", blank lines


GAPS = [b"\n", b"\n", b"\n", b"\r\n", b"\n\n", b"\n \t\n", b"\r\n\r\n"]

json_rows = st.lists(
    st.builds(
        JsonRow,
        bad=st.integers(0, 9).map(lambda n: n == 0),
        joined=st.integers(0, 14).map(lambda n: n == 0),
        split=st.integers(0, 14).map(lambda n: n == 0),
        gap=st.sampled_from(GAPS),
    ),
    min_size=1,
    max_size=120,
)


def json_text(ident: int, row: JsonRow) -> bytes:
    value: object = "x" if row.bad else ident * 7
    text = json.dumps({"id": ident, "v": value}).encode()
    if row.split:
        comma = text.index(b",")
        return text[: comma + 1] + b"\n" + text[comma + 1 :]
    return text


def json_file(rows: list[JsonRow], *, bom: bool, final_break: bool) -> bytes:
    parts = [BOM] if bom else []
    for ident, row in enumerate(rows):
        if ident and row.joined:
            parts[-1] = b" "  # on the line of the row before: two values on one line
        parts += [json_text(ident, row), row.gap]
    if not final_break:
        parts.pop()
    return b"".join(parts)


def json_ids(row: dict[str, Any]) -> list[int]:
    if "text" in row:
        return [int(found) for found in ID_IN_JSON.findall(row["text"])]
    return [row["id"]]


def line_of(data: bytes, number: int) -> bytes:
    return data.removeprefix(BOM).split(b"\n")[number - 1]


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=json_rows,
    bom=st.booleans(),
    final_break=st.booleans(),
    block_size=st.sampled_from([200, 256, 333, 512, 1024, 4 << 20]),
    schema=st.booleans(),
)
def test_json_lines_every_row_once_whatever_the_layout(
    tmp_path_factory, *, rows, bom, final_break, block_size, schema
):
    data = json_file(rows, bom=bom, final_break=final_break)
    path = tmp_path_factory.mktemp("jsonl") / "rows.jsonl"
    path.write_bytes(data)
    ctx, sink = context()
    source = read_jsonl(str(path), block_size=block_size, schema=SCHEMA if schema else None)

    outcome = extract(source, ctx, sink, json_ids)

    assert_each_row_once(outcome, len(rows))
    for ident, line in outcome.rejected.items():  # the line named holds the row
        assert re.search(rb'"id": ?%d\b' % ident, line_of(data, line)), (ident, line)
    broken = {
        i
        for i, row in enumerate(rows)
        if row.split or (i and row.joined) or (i + 1 < len(rows) and rows[i + 1].joined)
    }
    assert broken <= set(outcome.rejected), "a line not holding one value was loaded"
    if schema:  # with the types given, exactly the bad and the broken rows are rejected
        bad = {i for i, row in enumerate(rows) if row.bad}
        assert set(outcome.rejected) == broken | bad
    assert_records_are_their_own_lines(source, ctx, outcome)


def assert_records_are_their_own_lines(source: Any, ctx: RunContext, outcome: Outcome) -> None:
    """The quarantine's look-up finds each loaded row's own object (line numbers exact)."""
    first = 0
    for batch in outcome.batches:
        rows = list(range(first, first + batch.num_rows))
        records = source.source_records(ctx, rows, batch)
        held = batch.to_pylist()
        for offset, row in enumerate(rows):
            assert row in records, f"run row {row} ({held[offset]}) has no record"
            assert records[row]["id"] == held[offset]["id"]
        first += batch.num_rows


def test_the_reported_layout_loses_nothing(tmp_path):
    """200 objects, two on the first line, a bad one at 150, blocks of 512 bytes."""
    texts = [json.dumps({"id": i, "v": "bad" if i == 150 else i}) for i in range(200)]
    path = tmp_path / "rows.jsonl"
    path.write_text(texts[0] + " " + texts[1] + "\n" + "\n".join(texts[2:]) + "\n")
    ctx, sink = context()

    outcome = extract(read_jsonl(str(path), block_size=512), ctx, sink, json_ids)

    assert_each_row_once(outcome, 200)
    assert outcome.rejected == {0: 1, 1: 1, 150: 150}
    assert sink.reasons[0].endswith(
        "line 1: holds more than one JSON value (JSON Lines has one value per line)"
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b'{"id": 0, "v": 1} {"id": 1, "v": 2}', "holds more than one JSON value"),
        (b'{"id": 0,', "is not JSON (Expecting property name enclosed in double quotes"),
        (b'"v": 2}', "is not JSON (Extra data at column 4)"),
    ],
)
def test_a_line_not_holding_one_value_fails_the_run_naming_it(tmp_path, text, reason):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"id": 9, "v": 9}\n' + text + b"\n")
    ctx, _ = context()
    ctx.reject_sink = None

    with pytest.raises(FatalError) as info:
        list(read_jsonl(str(path)).extract(ctx))

    message = str(info.value)
    assert message.startswith(f"JSONL file {path}: line 2: {reason}"), message
    assert "\n" not in message


# --- CSV ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvRow:
    bad: str  # "": fits; "type": a value that is not a number; "columns": one too many
    gap: bytes  # line break(s) after the row


CSV_GAPS = [b"\n", b"\n", b"\r\n", b"\r", b"\n\n", b"\r\n\r\n", b"\r\r"]

csv_rows = st.lists(
    st.builds(
        CsvRow,
        bad=st.sampled_from(["", "", "", "", "", "", "", "", "type", "columns"]),
        gap=st.sampled_from(CSV_GAPS),
    ),
    min_size=1,
    max_size=150,
)


def csv_file(rows: list[CsvRow], *, bom: bool, lead: bytes, final_break: bool, eol: bytes) -> bytes:
    parts = [BOM] if bom else []
    parts += [lead, b"id,v", eol]
    for ident, row in enumerate(rows):
        value = b"x%d" % ident if row.bad == "type" else b"%d" % (ident * 7)
        extra = b",surplus" if row.bad == "columns" else b""
        parts += [b"%d,%s%s" % (ident, value, extra), row.gap]
    if not final_break:
        parts.pop()
    return b"".join(parts)


def csv_ids(row: dict[str, Any]) -> list[int]:
    if "text" in row:
        return [int(row["text"].split(",")[0])]
    return [int(row["id"])]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=csv_rows,
    bom=st.booleans(),
    lead=st.sampled_from([b"", b"\n", b"\r\n\n"]),
    final_break=st.booleans(),
    eol=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    block_size=st.sampled_from([64, 100, 128, 256, 4 << 20]),
)
def test_csv_every_row_once_whatever_the_layout(
    tmp_path_factory, *, rows, bom, lead, final_break, eol, block_size
):
    data = csv_file(rows, bom=bom, lead=lead, final_break=final_break, eol=eol)
    path = tmp_path_factory.mktemp("csv") / "rows.csv"
    path.write_bytes(data)
    ctx, sink = context()
    source = read_csv(str(path), block_size=block_size, column_types={"v": pa.int64()})

    outcome = extract(source, ctx, sink, csv_ids)

    assert_each_row_once(outcome, len(rows))
    assert set(outcome.rejected) == {i for i, row in enumerate(rows) if row.bad}
    lines = data.removeprefix(BOM).splitlines()  # CSV lines end at \n, \r\n or \r
    for ident, line in outcome.rejected.items():
        assert lines[line - 1].startswith(b"%d," % ident), (ident, line, lines[line - 1])
    if outcome.batches:
        assert outcome.batches[0].schema.names == ["id", "v"]  # the BOM is not in a name


@pytest.mark.parametrize(
    "options",
    [{}, {"schema": pa.schema([("id", pa.int64())])}, {"column_types": {"v": pa.int64()}}],
    ids=["text column", "column not read", "typed column"],
)
def test_a_csv_row_over_two_lines_fails_the_run_whatever_its_column(tmp_path, options):
    """A quoted line break, also in a column not read, would make rows and lines part.

    (Across the edge of two blocks its lines are judged one by one instead: each is then
    loaded or rejected on its own, never lost.)
    """
    rows = b"".join(b"%d,%d\n" % (i, i) for i in range(40))
    path = tmp_path / "rows.csv"
    path.write_bytes(b"id,v\n" + rows + b'40,"4\n0"\n41,41\n')
    ctx, _ = context()

    with pytest.raises(FatalError) as info:
        list(read_csv(str(path), **options).extract(ctx))

    message = str(info.value)
    assert message.startswith(f"CSV file {path}: line 42: "), message
    assert "quoted line breaks are not supported" in message


# --- through a flow into the quarantine --------------------------------------------------


class Row(BaseModel):
    id: int
    v: int


def test_a_flow_quarantines_each_broken_line_once_and_loads_the_rest(
    tmp_path, make_context, warehouse
):
    texts = [json.dumps({"id": i, "v": i}) for i in range(300)]
    texts[40] = texts[40] + " " + texts.pop(41)  # ids 40 and 41 on one line
    texts[100] = texts[100].replace(", ", ",\n")  # id 101 over two lines (after the pop)
    texts[200] = json.dumps({"id": 201, "v": "two hundred one"})
    path = tmp_path / "rows.jsonl"
    path.write_bytes(BOM + "\r\n".join(texts).encode() + b"\r\n")
    loaded: list[int] = []
    flow = etl(
        "recovery",
        extract=read_jsonl(str(path), block_size=1024),
        transform=[validate(Row, on_error="skip", max_invalid=0.05)],
        load=lambda batch: loaded.extend(batch.column("id").to_pylist()),
    )
    ctx = make_context(pipeline="recovery")

    flow.run(ctx)

    stored = warehouse.query_rows(
        f"SELECT reason, record FROM {QUARANTINE_TABLE} WHERE run_id = {{r:String}}",
        {"r": ctx.run_id},
    )
    rejected = sorted(i for _, record in stored for i in json_ids(json.loads(record)))
    assert rejected == [40, 41, 101, 201]
    assert sorted(loaded + rejected) == list(range(300))
    assert len(loaded) == len(set(loaded))
    reasons = [reason.split(": ", 1)[1] for reason, _ in stored]
    assert any(r.startswith("line 41: holds more than one JSON value") for r in reasons)
