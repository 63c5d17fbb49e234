"""Finding the records a file extractor read, for quarantining rows as they really were.

An Arrow batch cannot tell a key a JSON record lacked from a key that was null: both
read as null.  To store a rejected row exactly, the file extractors remember which run
rows came from which file (a :class:`Segment` per file), and on the (rare) quarantine
path the wanted records are read again from their files.  JSON Lines records are
parsed as they are written; records are counted without blank lines, as pyarrow's
reader counts them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Segment:
    """Rows ``first_row`` .. ``first_row + rows - 1`` of the run came from ``path``."""

    path: Path
    shown: str
    first_row: int
    rows: int = 0


def json_records(
    segments: list[Segment], rows: Iterable[int], filename_column: str | None = None
) -> dict[int, Mapping[str, Any]]:
    """The JSON objects of the run rows ``rows`` (those found), read again from their files."""
    wanted: dict[int, dict[int, int]] = {}  # segment -> {record in file: run row}
    for row in rows:
        for number, segment in enumerate(segments):
            if segment.first_row <= row < segment.first_row + segment.rows:
                wanted.setdefault(number, {})[row - segment.first_row] = row
                break
    found: dict[int, Mapping[str, Any]] = {}
    for number, records in wanted.items():
        segment = segments[number]
        for record, value in _read_records(segment.path, set(records)).items():
            if isinstance(value, dict):
                extra = {} if filename_column is None else {filename_column: segment.shown}
                found[records[record]] = {**value, **extra}
    return found


def _read_records(path: Path, wanted: set[int]) -> dict[int, Any]:
    """Records ``wanted`` (0-based, blank lines not counted) of a JSON Lines file, parsed."""
    import pyarrow as pa

    from runner.tools.extract.files import compression_of

    found: dict[int, Any] = {}
    record = 0
    carry = b""
    last = max(wanted)
    with pa.input_stream(str(path), compression=compression_of(path)) as stream:
        while record <= last and (chunk := stream.read(1 << 20)):
            *lines, carry = (carry + chunk).split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                if record in wanted:
                    found[record] = _parsed(line)
                record += 1
    if carry.strip() and record in wanted:
        found[record] = _parsed(carry)
    return found


def _parsed(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None
