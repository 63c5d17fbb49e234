"""A corpus of hostile input files, generated into a directory at test time (no blobs).

Each :class:`BadFile` is written by :func:`write` and says how the framework must react:
``error`` is a regular expression the one-line error must match (besides naming the
file), or ``None`` when the file must be read without error (empty files have no rows).

``rows_before_damage`` valid rows precede the damage, so a reader that streams in small
blocks has already handed some batches to the loader when the error comes: the
replace-window loader must still show none of them.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: Columns of every CSV and JSON Lines file in the corpus.
COLUMNS = ("id", "ts", "name")
TEN_MB = 10 << 20


def good_rows(day: str, count: int, start: int = 0) -> list[dict[str, object]]:
    """Valid rows inside the day ``day`` (``YYYY-MM-DD``), one per minute."""
    return [
        {"id": start + i, "ts": f"{day}T00:{i % 60:02d}:00Z", "name": f"row-{start + i}"}
        for i in range(count)
    ]


def csv_lines(rows: list[dict[str, object]], header: bool = True) -> bytes:
    """Plain CSV (no quoting needed: the generated values hold no commas)."""
    lines = [",".join(COLUMNS)] if header else []
    lines += [",".join(str(row[c]) for c in COLUMNS) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def jsonl_lines(rows: list[dict[str, object]]) -> bytes:
    """One JSON object per line."""
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


@dataclass(frozen=True)
class BadFile:
    """One hostile file and the reaction it must cause."""

    name: str
    suffix: str  # .csv, .jsonl, .csv.gz, .parquet ...
    make: Callable[[str], bytes]  # day -> content
    error: str | None  # regex of the error after the file name; None: must read cleanly
    rows_before_damage: int = 0
    options: dict[str, object] = field(default_factory=dict)  # extra reader options

    @property
    def fmt(self) -> str:
        """``csv``, ``jsonl`` or ``parquet``."""
        return self.suffix.lstrip(".").split(".")[0]


def write(case: BadFile, directory: Path, day: str = "2026-01-01") -> Path:
    """Write ``case`` into ``directory`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{case.name}{case.suffix}"
    path.write_bytes(case.make(day))
    return path


PREFIX = 40  # valid rows before the damage: several 1 KiB blocks


def _prefix(day: str) -> list[dict[str, object]]:
    return good_rows(day, PREFIX)


def _csv_then(tail: bytes) -> Callable[[str], bytes]:
    return lambda day: csv_lines(_prefix(day)) + tail


def _jsonl_then(tail: bytes) -> Callable[[str], bytes]:
    return lambda day: jsonl_lines(_prefix(day)) + tail


def _truncated_gzip(day: str) -> bytes:
    whole = gzip.compress(csv_lines(good_rows(day, 2000)))
    return whole[: len(whole) // 2]


def _random_bytes(_: str) -> bytes:
    import random

    rng = random.Random(7)
    return bytes(rng.randrange(256) for _ in range(4096))


def _huge_csv_field(day: str) -> bytes:
    return csv_lines(_prefix(day)) + f"999,{day}T01:00:00Z,".encode() + b"x" * TEN_MB + b"\n"


def _huge_json_field(day: str) -> bytes:
    big = "x" * TEN_MB
    return (
        jsonl_lines(_prefix(day))
        + json.dumps({"id": 999, "ts": f"{day}T01:00:00Z", "name": big}).encode()
        + b"\n"
    )


def _truncated_parquet(day: str) -> bytes:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(good_rows(day, 500)), buffer)
    data = buffer.getvalue()
    return data[: len(data) - 40]


#: Files that must fail the run with one clear line naming the file.
FATAL_FILES: tuple[BadFile, ...] = (
    BadFile(
        "unbalanced_quote_at_end",
        ".csv",
        _csv_then(b'900,2026-01-01T02:00:00Z,"never closed\n901,2026-01-01T02:01:00Z,lost\n'),
        r"line break.*unbalanced quote",
        PREFIX,
    ),
    BadFile(
        "unbalanced_quote_in_the_middle",
        ".csv",
        _csv_then(
            b'900,2026-01-01T02:00:00Z,"opens\n901,2026-01-01T02:01:00Z,closes"\n'
            b"902,2026-01-01T02:02:00Z,fine\n"
        ),
        r"line break.*unbalanced quote",
        PREFIX,
    ),
    BadFile(
        "too_many_columns",
        ".csv",
        _csv_then(b"900,2026-01-01T02:00:00Z,a,surplus\n"),
        r"line 42: expected 3 columns, got 4",
        PREFIX,
    ),
    BadFile(
        "too_few_columns",
        ".csv",
        _csv_then(b"900,2026-01-01T02:00:00Z\n"),
        r"line 42: expected 3 columns, got 2",
        PREFIX,
    ),
    BadFile(
        "control_characters",
        ".csv",
        _csv_then(b"900,2026-01-01T02:00:00Z,\x1b[2J\x0bspoofed line\x07,surplus\n"),
        r"line 42: expected 3 columns, got 4(?!.*spoofed)",
        PREFIX,
    ),
    BadFile(
        "invalid_utf8_in_header",
        ".csv",
        lambda day: b"id,t\xffs,name\n" + csv_lines(_prefix(day), header=False),
        r"has no column 'ts' of the given schema",
    ),
    BadFile(
        "invalid_utf8_in_value",
        ".csv",
        _csv_then(b"900,2026-01-01T02:00:00Z,caf\xe9\n"),
        r"line 42: column 'name': the value is not valid UTF-8",
        PREFIX,
    ),
    BadFile(
        "wrong_type",
        ".csv",
        _csv_then(b"nine hundred,2026-01-01T02:00:00Z,a\n"),
        r"line 42: column 'id': cannot read 'nine hundred' as int64",
        PREFIX,
    ),
    BadFile(
        "impossible_date",
        ".csv",
        _csv_then(b"900,2026-02-30T00:00:00Z,a\n"),
        r"line 42: column 'ts': cannot read '2026-02-30T00:00:00Z' as timestamp",
        PREFIX,
    ),
    BadFile(
        "date_beyond_year_9999",
        ".csv",
        _csv_then(b"900,10000-01-01T00:00:00Z,a\n"),
        r"line 42: column 'ts': cannot read '10000-01-01T00:00:00Z' as timestamp",
        PREFIX,
    ),
    BadFile(
        "ten_megabyte_field",
        ".csv",
        _huge_csv_field,
        r"line 42 is longer than block_size \(1024 bytes\); raise block_size=",
        PREFIX,
    ),
    BadFile(
        "missing_column",
        ".csv",
        lambda day: b"id,ts\n1," + f"{day}T00:00:00Z\n".encode(),
        r"has no column 'name'",
    ),
    BadFile(
        "truncated_gzip", ".csv.gz", _truncated_gzip, r"(?i)gzip|truncated|unexpected end", 2000
    ),
    BadFile("binary_garbage", ".csv", _random_bytes, r"."),
    BadFile(
        "json_garbage_line",
        ".jsonl",
        _jsonl_then(b"this is not json\n"),
        r"line 41: is not JSON",
        PREFIX,
    ),
    BadFile(
        "json_unterminated_object",
        ".jsonl",
        _jsonl_then(b'{"id": 900, "ts": "2026-01-01T02:00:00Z", "name": "a"'),
        r"line 41: is not JSON",
        PREFIX,
    ),
    BadFile(
        "json_array_instead_of_object",
        ".jsonl",
        _jsonl_then(b"[900, 1, 2]\n"),
        r"line 41: is an array, not a JSON object",
        PREFIX,
    ),
    BadFile(
        "json_wrong_type",
        ".jsonl",
        _jsonl_then(b'{"id": "nine hundred", "ts": "2026-01-01T02:00:00Z", "name": "a"}\n'),
        r"line 41: field 'id': 'nine hundred' is a string, not int64",
        PREFIX,
    ),
    BadFile(
        "json_invalid_utf8",
        ".jsonl",
        _jsonl_then(b'{"id": 900, "ts": "2026-01-01T02:00:00Z", "name": "caf\xe9"}\n'),
        r"line 41: is not valid UTF-8",
        PREFIX,
    ),
    BadFile(
        "json_ten_megabyte_field",
        ".jsonl",
        _huge_json_field,
        r"line 41 is longer than block_size \(1024 bytes\); raise block_size=",
        PREFIX,
    ),
    BadFile("parquet_garbage", ".parquet", _random_bytes, r"(?i)parquet"),
    BadFile("parquet_truncated", ".parquet", _truncated_parquet, r"(?i)parquet"),
)

#: Files that are not errors: they hold no rows.
EMPTY_FILES: tuple[BadFile, ...] = (
    BadFile("empty_csv", ".csv", lambda _: b"", None),
    BadFile("header_only_csv", ".csv", lambda _: b"id,ts,name\n", None),
    BadFile("empty_gzip_csv", ".csv.gz", lambda _: gzip.compress(b""), None),
    BadFile("empty_jsonl", ".jsonl", lambda _: b"", None),
    BadFile("blank_lines_jsonl", ".jsonl", lambda _: b"\n\n\n", None),
)


def quarantine_rows(day: str) -> tuple[bytes, dict[int, str]]:
    """JSON Lines whose bad rows must be quarantined by validate(on_error="skip").

    Returns the file and, per bad row id, a regex its quarantine reason must match.
    Values are strings in the file so the reader never fails; validation decides.
    """
    good = [
        {"id": str(i), "ts": f"{day}T03:00:00Z", "name": f"ok-{i}", "amount": "1.5"}
        for i in range(5)
    ]
    bad: list[tuple[dict[str, str], str]] = [
        (
            {"id": "x", "ts": f"{day}T03:00:00Z", "name": "n", "amount": "1"},
            r"id: Input should be a valid integer",
        ),
        (
            {"id": "101", "ts": f"{day}T03:00:00Z", "name": "n", "amount": "NaN"},
            r"amount: Input should be a finite number",
        ),
        (
            {"id": "102", "ts": f"{day}T03:00:00Z", "name": "n", "amount": "inf"},
            r"amount: Input should be a finite number",
        ),
        (
            {"id": "103", "ts": "1850-01-01T00:00:00Z", "name": "n", "amount": "1"},
            r"ts: Value error, .*outside",
        ),
        (
            {"id": "104", "ts": "9999-12-31T00:00:00Z", "name": "n", "amount": "1"},
            r"ts: Value error, .*outside",
        ),
        (
            {"id": "105", "ts": "2026-13-01T00:00:00Z", "name": "n", "amount": "1"},
            r"ts: Input should be a valid datetime",
        ),
        (
            {"id": "106", "ts": f"{day}T03:00:00Z", "name": "x" * (1 << 20), "amount": "1"},
            r"name: String should have at most",
        ),
        (
            # no name at all: a flow quarantines the file's own record ("Field required");
            # a transform called on a batch alone sees the batch's null
            {"id": "107", "ts": f"{day}T03:00:00Z", "amount": "1"},
            r"name: (Field required|Input should be a valid string)",
        ),
    ]
    rows = good[:2] + [row for row, _ in bad] + good[2:]
    reasons = {int(row["id"]) if row["id"].isdigit() else -1: reason for row, reason in bad}
    return jsonl_lines(rows), reasons
