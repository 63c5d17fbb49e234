"""Finding the records a file extractor read, for quarantining rows as they really were.

An Arrow batch cannot tell a key a JSON record lacked from a key that was null: both
read as null.  To store a rejected row exactly, the file extractors remember which run
rows came from which file (a :class:`Segment` per file), and on the (rare) quarantine
path the wanted records are read again from their files.  JSON Lines records are
parsed as they are written; records are counted without blank lines, as pyarrow's
reader counts them.
"""

from __future__ import annotations

import bisect
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
    segments: list[Segment],
    rows: Iterable[int],
    cursors: dict[int, RecordCursor],
    filename_column: str | None = None,
) -> dict[int, Mapping[str, Any]]:
    """The JSON objects of the run rows ``rows`` (those found), read again from their files.

    ``cursors`` (kept by the caller for the run) remember where each file was left, so
    the batches of a run, asked for in order, read each file once in all.
    """
    wanted: dict[int, dict[int, int]] = {}  # segment -> {record in file: run row}
    starts = [segment.first_row for segment in segments]
    for row in rows:
        number = bisect.bisect_right(starts, row) - 1
        if number >= 0 and row < segments[number].first_row + segments[number].rows:
            wanted.setdefault(number, {})[row - segments[number].first_row] = row
    found: dict[int, Mapping[str, Any]] = {}
    for number, records in sorted(wanted.items()):
        for earlier in [n for n in cursors if n < number]:  # files are read in order
            cursors.pop(earlier).close()
        segment = segments[number]
        cursor = cursors.get(number)
        if cursor is None or cursor.next_record > min(records):
            if cursor is not None:
                cursor.close()
            cursor = cursors[number] = RecordCursor(segment.path)
        extra = {} if filename_column is None else {filename_column: segment.shown}
        for record, value in cursor.read(set(records)).items():
            if isinstance(value, dict):
                found[records[record]] = {**value, **extra}
    return found


class RecordCursor:
    """Reads a JSON Lines file forward, record by record (blank lines not counted)."""

    def __init__(self, path: Path) -> None:
        import pyarrow as pa

        from runner.tools.extract.files import compression_of

        self._stream = pa.input_stream(str(path), compression=compression_of(path))
        self._lines: list[bytes] = []
        self._carry = b""
        self._done = False
        self.next_record = 0

    def read(self, wanted: set[int]) -> dict[int, Any]:
        """Records ``wanted`` (all at or after ``next_record``), parsed."""
        found: dict[int, Any] = {}
        last = max(wanted)
        while self.next_record <= last:
            line = self._next_line()
            if line is None:
                break
            if not line.strip():
                continue
            if self.next_record in wanted:
                found[self.next_record] = _parsed(line)
            self.next_record += 1
        return found

    def _next_line(self) -> bytes | None:
        while not self._lines:
            if self._done:
                return None
            chunk = self._stream.read(1 << 20)
            if not chunk:
                self._done = True
                self._lines, self._carry = [self._carry], b""
                break
            *self._lines, self._carry = (self._carry + chunk).split(b"\n")
            self._lines.reverse()
        return self._lines.pop()

    def close(self) -> None:
        """Close the file."""
        self._stream.close()


def _parsed(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None
