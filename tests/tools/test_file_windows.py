"""File sources and the run's window: path templates and time_column, on real files."""

from __future__ import annotations

import gzip
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from runner.errors import ConfigError, FatalError
from runner.pipeline.windows import Window
from runner.tools.extract import _file_source as file_source
from runner.tools.extract._file_paths import Template, Unit
from runner.tools.extract.files import read_csv, read_jsonl, read_parquet


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file a source looks inside, in order (a spy: the real function still runs)."""
    seen: list[str] = []
    real = file_source.entries

    def spy(path, shown):
        seen.append(shown)
        return real(path, shown)

    monkeypatch.setattr(file_source, "entries", spy)
    return seen


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def window(start: str, end: str) -> Window:
    return Window(at(start), at(end))


def rows(source, ctx) -> list[dict]:
    return [row for batch in source.extract(ctx) for row in batch.to_pylist()]


def daily_csv_files(root: Path, days: int) -> None:
    """One gzip CSV per day of January 2026 in data/YYYY/MM/DD/, one row per hour."""
    for day in range(1, days + 1):
        folder = root / "data" / f"2026/01/{day:02d}"
        folder.mkdir(parents=True)
        body = "".join(f"{day * 100 + h},2026-01-{day:02d} {h:02d}:30:00\n" for h in range(24))
        (folder / "events.csv.gz").write_bytes(gzip.compress(f"id,ts\n{body}".encode()))


# --- path templates ------------------------------------------------------------------


def test_a_daily_template_opens_only_the_windows_files(workdir, make_context, opened):
    daily_csv_files(workdir, 10)
    for day in (1, 2, 6, 7, 8, 9, 10):  # outside the window: reading any of them would fail
        (workdir / f"data/2026/01/{day:02d}/events.csv.gz").write_bytes(b"\x1f\x8bnot gzip")
    source = read_csv("data/{window_start:%Y/%m/%d}/*.csv.gz", filename_column="file")
    ctx = make_context(window=window("2026-01-03", "2026-01-06"))

    found = rows(source, ctx)

    assert opened == [f"data/2026/01/0{d}/events.csv.gz" for d in (3, 4, 5)]
    assert len(found) == 3 * 24
    assert {r["file"] for r in found} == set(opened)


def test_a_window_inside_one_day_opens_that_days_file_once(workdir, make_context, opened):
    daily_csv_files(workdir, 3)
    source = read_csv("data/{window_start:%Y/%m/%d}/events.csv.gz")
    rows(source, make_context(window=window("2026-01-02T10:00", "2026-01-02T11:00")))
    assert opened == ["data/2026/01/02/events.csv.gz"]


def test_a_period_without_a_file_fails_before_anything_is_read(workdir, make_context, opened):
    daily_csv_files(workdir, 5)
    (workdir / "data/2026/01/03/events.csv.gz").unlink()
    (workdir / "data/2026/01/04/events.csv.gz").unlink()
    source = read_csv("data/{window_start:%Y/%m/%d}/*.csv.gz")
    with pytest.raises(FatalError) as info:
        rows(source, make_context(window=window("2026-01-01", "2026-01-06")))
    assert str(info.value) == (
        "no file for 2 of the window's periods: data/2026/01/03/*.csv.gz, "
        f"data/2026/01/04/*.csv.gz (relative to {workdir}); pass missing_files='skip' "
        "if periods without files are expected"
    )
    assert opened == []


def test_missing_files_skip_reads_the_periods_that_have_files(workdir, make_context, opened):
    daily_csv_files(workdir, 5)
    (workdir / "data/2026/01/03/events.csv.gz").unlink()
    source = read_csv("data/{window_start:%Y/%m/%d}/*.csv.gz", missing_files="skip")
    found = rows(source, make_context(window=window("2026-01-02", "2026-01-05")))
    assert len(opened) == 2
    assert sorted({r["id"] // 100 for r in found}) == [2, 4]


def test_hourly_periods_in_a_zone_follow_its_clock_changes():
    # Berlin springs forward at 2026-03-29 01:00 UTC (02:00 local does not exist) and falls
    # back at 2026-10-25 01:00 UTC (02:00 local happens twice: rendered once)
    template = Template.parse("in/{window_start:%Y%m%d/%H}.csv")
    berlin = ZoneInfo("Europe/Berlin")
    spring = template.patterns(window("2026-03-29T00:00", "2026-03-29T03:00"), berlin)
    assert [p for p, _ in spring] == [
        "in/20260329/01.csv",
        "in/20260329/03.csv",
        "in/20260329/04.csv",
    ]
    autumn = template.patterns(window("2026-10-24T23:00", "2026-10-25T02:00"), berlin)
    assert [p for p, _ in autumn] == [
        "in/20261025/01.csv",
        "in/20261025/02.csv",
    ]
    utc = template.patterns(window("2026-03-29T00:00", "2026-03-29T03:00"), UTC)
    assert [p for p, _ in utc] == ["in/20260329/00.csv", "in/20260329/01.csv", "in/20260329/02.csv"]


def test_a_zone_moves_day_boundaries(workdir, make_context, opened):
    daily_csv_files(workdir, 3)
    # 2026-01-01T23:30Z is already January 2nd in Tokyo: Tokyo's days 2 and 3
    source = read_csv("data/{window_start:%Y/%m/%d}/*.csv.gz", timezone="Asia/Tokyo")
    rows(source, make_context(window=window("2026-01-01T23:30", "2026-01-02T16:00")))
    assert opened == ["data/2026/01/02/events.csv.gz", "data/2026/01/03/events.csv.gz"]


@pytest.mark.parametrize(
    ("text", "unit", "expected"),
    [
        (
            "m/{window_start:%Y-%m}.csv",
            Unit.MONTH,
            ["m/2026-01.csv", "m/2026-02.csv", "m/2026-03.csv"],
        ),
        ("y/{window_start:%Y}.csv", Unit.YEAR, ["y/2026.csv"]),
        ("w/{window_start:%G-W%V}.csv", Unit.WEEK, [f"w/2026-W{n:02d}.csv" for n in range(3, 10)]),
        ("d/{window_start:%j}/{{raw}}.csv", Unit.DAY, None),
        ("q/{window_start:%Y%m%d%H%M}.csv", Unit.MINUTE, None),
    ],
)
def test_the_finest_directive_sets_the_period(text, unit, expected):
    template = Template.parse(text)
    assert template.unit is unit
    found = [p for p, _ in template.patterns(window("2026-01-15", "2026-03-02"), UTC)]
    if expected is not None:
        assert found == expected
    if unit is Unit.DAY:
        assert found[0] == "d/015/{raw}.csv"  # doubled braces are literal
        assert len(found) == (date(2026, 3, 2) - date(2026, 1, 15)).days


def test_a_template_too_fine_for_a_long_window_fails_clearly(workdir, make_context):
    source = read_csv("s/{window_start:%Y%m%d%H%M%S}.csv")
    with pytest.raises(FatalError, match=r"spans 2678400 periods of a second"):
        rows(source, make_context(window=window("2026-01-01", "2026-02-01")))


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("d/{window_start}.csv", "give {window_start} a strftime format"),
        ("d/{window_end:%Y}.csv", r"only \{window_start:FORMAT\}"),
        ("d/{window_start:%Y}/{other}.csv", r"found \{other\}"),
        ("d/{window_start!r:%Y}.csv", r"only \{window_start:FORMAT\}"),
        ("d/{window_start:%Y-%f}.csv", "%f is not a supported"),
        ("d/{window_start:%Y}/{.csv", "literal brace"),
    ],
)
def test_bad_templates_are_config_errors_at_declaration(path, message):
    with pytest.raises(ConfigError, match=message):
        read_csv(path)


# --- time_column ----------------------------------------------------------------------


def test_time_column_keeps_the_half_open_window_naive_times_as_utc(workdir, make_context):
    (workdir / "a.csv").write_text(
        "id,ts\n1,2025-12-31 23:59:59\n2,2026-01-01 00:00:00\n3,2026-01-01 23:59:59.999\n"
        "4,2026-01-02 00:00:00\n"
    )
    found = rows(read_csv("a.csv", time_column="ts"), make_context())  # window: 2026-01-01
    assert [r["id"] for r in found] == [2, 3]


def test_time_column_compares_instants_of_zoned_and_text_times(workdir, make_context):
    (workdir / "a.jsonl").write_text(
        '{"id": 1, "ts": "2026-01-01T23:30:00-01:00"}\n'  # 2026-01-02T00:30Z: outside
        '{"id": 2, "ts": "2026-01-02T00:30:00+01:00"}\n'  # 2026-01-01T23:30Z: inside
        '{"id": 3, "ts": "2026-01-01T12:00:00Z"}\n'
    )
    found = rows(read_jsonl("a.jsonl", time_column="ts"), make_context())
    assert [r["id"] for r in found] == [2, 3]
    text = pa.schema([("id", pa.int64()), ("ts", pa.string())])
    (workdir / "b.jsonl").write_text(
        '{"id": 4, "ts": "2026-01-01T04:00:00+05:00"}\n{"id": 5, "ts": "2026-01-01 05:00"}\n'
    )
    found = rows(read_jsonl("b.jsonl", schema=text, time_column="ts"), make_context())
    assert [r["id"] for r in found] == [5]  # 4 is 2025-12-31T23:00Z


def test_time_column_of_dates_counts_each_date_at_midnight_utc(workdir, make_context):
    (workdir / "a.csv").write_text("id,day\n1,2025-12-31\n2,2026-01-01\n3,2026-01-02\n")
    source = read_csv("a.csv", column_types={"day": pa.date32()}, time_column="day")
    assert [r["id"] for r in rows(source, make_context())] == [2]


def test_a_row_without_a_time_fails_the_run_naming_its_line(workdir, make_context):
    (workdir / "a.csv").write_text("id,ts\n1,2026-01-01 10:00:00\n\n2,\n")
    with pytest.raises(FatalError) as info:
        rows(read_csv("a.csv", time_column="ts"), make_context())
    assert str(info.value) == (
        "CSV file a.csv: line 4: 'ts' is empty: the row belongs to no window"
    )


def test_a_time_column_of_another_type_or_absent_fails_naming_the_file(workdir, make_context):
    (workdir / "a.csv").write_text("id,ts\n1,2\n")
    with pytest.raises(FatalError, match=r"CSV file a\.csv: time_column 'ts' is int64"):
        rows(read_csv("a.csv", time_column="ts"), make_context())
    with pytest.raises(FatalError, match=r"CSV file a\.csv: has no column 'when' \(time_column\)"):
        rows(read_csv("a.csv", time_column="when"), make_context())
    with pytest.raises(ConfigError, match="time_column 'when' is not one of the columns read"):
        read_parquet("a.parquet", columns=["id"], time_column="when")


def hourly_parquet(path: Path, hours: int) -> None:
    """One row group per hour of 2026-01-01 (from 22:00 the day before), uncompressed."""
    start = at("2025-12-31T22:00")
    table = pa.table(
        {
            "ts": pa.array(
                [start + timedelta(hours=h, minutes=m) for h in range(hours) for m in range(60)],
                pa.timestamp("ms", "UTC"),
            ),
            "v": pa.array([h for h in range(hours) for _ in range(60)], pa.int64()),
        }
    )
    pq.write_table(table, path, row_group_size=60, compression="none", use_dictionary=False)


def test_parquet_row_groups_outside_the_window_are_never_decoded(workdir, make_context):
    path = workdir / "h.parquet"
    hourly_parquet(path, 30)  # 22:00 the day before ... 03:00 the day after
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == 30
    # overwrite the data pages of every row group outside 2026-01-01 with garbage, leaving
    # the footer (and its statistics) intact: decoding any of them fails
    data = bytearray(path.read_bytes())
    for group in [0, 1, 26, 27, 28, 29]:
        for column in range(meta.num_columns):
            chunk = meta.row_group(group).column(column)
            offset = chunk.data_page_offset
            data[offset : offset + chunk.total_compressed_size] = (
                b"\xff" * chunk.total_compressed_size
            )
    path.write_bytes(bytes(data))
    with pytest.raises(FatalError, match=r"Parquet file h\.parquet: "):
        rows(read_parquet("h.parquet"), make_context())  # proof: reading all fails

    found = rows(read_parquet("h.parquet", time_column="ts"), make_context())

    assert len(found) == 24 * 60
    assert {r["v"] for r in found} == set(range(2, 26))


def test_parquet_time_filter_also_cuts_inside_a_row_group(workdir, make_context):
    hourly_parquet(workdir / "h.parquet", 3)
    ctx = make_context(window=window("2025-12-31T22:15", "2025-12-31T23:05"))
    found = rows(read_parquet("h.parquet", time_column="ts"), ctx)
    assert len(found) == 45 + 5
    assert found[0]["ts"] == at("2025-12-31T22:15")
