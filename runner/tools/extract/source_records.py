"""Finding the records a JSON Lines reader read, to quarantine rows as the file held them.

An Arrow batch cannot tell a key a JSON record lacked from a key that was null: both
read as null.  To store a rejected row exactly, the reader notes for every row it hands
on where it came from: the entry (a file, or a member of a zip archive) and the row's
record number there, i.e. the number of non-blank lines before its line.  The numbers
travel with the rows: rows the reader drops (outside the window, lines it rejected) are
dropped from the numbers with the same filter, and rows recovered line by line carry the
numbers of their own lines.  Counting is never used to guess a row's line.

Only on the (rare) quarantine path is a wanted line read again, and its record is given
only when it is proven to be the row's own:

* every line before it, and the line itself, holds exactly one JSON value, except lines
  the reader rejected.  The reader itself rejects a line holding two values or part of
  one (``_file_blocks``), so this holds for any file it read; it is checked again here
  because the numbers come from another reading of the file;
* the file is unchanged since the reader opened it (size, modification time, inode),
  and the line, parsed again as the reader parses, gives exactly the row the batch holds
  (a file rewritten in place within one tick of the clock is caught here).

Anything not proven gives None, and the row is stored as the batch holds it: a row may
lose the difference between a missing key and a null, but never gets another row's
record.  Reading again costs about one more parse of the entry up to the last wanted
line (Python's ``json``, a few microseconds a line), once per entry and run: a cursor
moves forward through each file as the batches ask for their rows in order, and what is
proven is remembered when a cursor must start again.  Rows the reader itself rejects for
their time (``time_column=``) are looked up the same way (:meth:`SourceRows.dropped`).
"""

from __future__ import annotations

import bisect
import json
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from runner.tools.extract._file_archives import Entry, open_stream
from runner.tools.extract._file_lines import Line, numbered_lines

if TYPE_CHECKING:
    import pyarrow as pa

#: Record numbers of a piece's rows: a range while no row was dropped, else an array.
RecordNumbers: TypeAlias = "range | pa.Int64Array"

#: A record number that is not known (the row's line cannot be told).
UNKNOWN = -1


def _stat(entry: Entry) -> tuple[int, int, int] | None:
    try:
        found = entry.path.stat()
    except OSError:
        return None
    return found.st_size, found.st_mtime_ns, found.st_ino


@dataclass
class _Origin:
    """What is known of one entry of the run: its state when read, its lines' proof."""

    order: int
    stat: tuple[int, int, int] | None
    rejected: set[int] = field(default_factory=set)  # records the reader rejected
    #: every record before this one, but rejected ones, holds exactly one JSON value
    proven_below: int = 0
    #: the first record that does not (rows and lines may part from there on)
    broken_at: int | None = None


@dataclass
class _Piece:
    """Run rows ``first_row`` .. ``first_row + len(records) - 1`` came from ``entry``."""

    first_row: int
    entry: Entry
    records: RecordNumbers

    @property
    def end(self) -> int:
        return self.first_row + len(self.records)

    def record(self, row: int) -> int:
        return number_at(self.records, row - self.first_row)


def number_at(numbers: RecordNumbers, index: int) -> int:
    """The record number of row ``index`` (``UNKNOWN`` when not known)."""
    found = numbers[index]
    number = found if isinstance(found, int) else found.as_py()
    return UNKNOWN if number is None else int(number)


class SourceRows:
    """Where the rows of one run of a reader came from, for the batches still in flight.

    The reader calls :meth:`opened` per entry, :meth:`rows` per block it hands on (in the
    order of the run's rows), :meth:`rejected` for lines it rejects, and :meth:`handed`
    per batch it yields.  Pieces are forgotten once every batch holding their rows is
    gone (batches are held by weak reference), so memory stays at a few batches' worth
    of numbers (8 bytes a row at most).  The quarantine path (another thread: the loader
    quarantines too) asks :meth:`records`.
    """

    def __init__(self, blank: Callable[[bytes], bool], filename_column: str | None) -> None:
        self.blank = blank
        self.filename_column = filename_column
        self._lock = threading.Lock()
        self._origins: dict[Entry, _Origin] = {}
        self._pieces: deque[_Piece] = deque()
        self._count = 0  # rows noted so far
        self._handed: deque[tuple[weakref.ref[pa.RecordBatch], int]] = deque()
        self._reading = threading.Lock()  # one quarantine lookup at a time
        self._cursors: dict[Entry, RecordCursor] = {}

    # -- the reader's side ------------------------------------------------------------

    def opened(self, entry: Entry) -> None:
        """``entry`` is about to be read."""
        with self._lock:
            self._origins[entry] = _Origin(len(self._origins), _stat(entry))

    def rows(self, entry: Entry, records: RecordNumbers) -> None:
        """The next rows of the run came from ``entry``, with these record numbers."""
        if not len(records):
            return
        with self._lock:
            self._pieces.append(_Piece(self._count, entry, records))
            self._count += len(records)

    def rejected(self, entry: Entry, records: Iterable[int]) -> None:
        """The reader rejected these records of ``entry`` (they need not be one value)."""
        with self._lock:
            self._origins[entry].rejected.update(records)

    def handed(self, batch: pa.RecordBatch, first_row: int) -> None:
        """``batch`` (run rows from ``first_row``) was yielded; forget what no batch holds."""
        with self._lock:
            self._handed.append((weakref.ref(batch), first_row))
            while self._handed and self._handed[0][0]() is None:
                self._handed.popleft()
            low = self._handed[0][1] if self._handed else first_row
            while self._pieces and self._pieces[0].end <= low:
                self._pieces.popleft()

    # -- the quarantine's side --------------------------------------------------------

    def records(self, rows: Sequence[int], held: pa.RecordBatch) -> dict[int, Mapping[str, Any]]:
        """The JSON objects of run rows ``rows``, for those proven to be theirs.

        ``held`` has the rows as the reader yielded them, in the order of ``rows``.
        """
        wanted: dict[Entry, dict[int, int]] = {}  # entry -> {record number: run row}
        with self._lock:
            pieces = list(self._pieces)
            starts = [piece.first_row for piece in pieces]
            for row in rows:
                index = bisect.bisect_right(starts, row) - 1
                if index < 0 or row >= pieces[index].end:
                    continue
                piece = pieces[index]
                number = piece.record(row)
                if number != UNKNOWN:
                    wanted.setdefault(piece.entry, {})[number] = row
            origins = {entry: self._origins[entry] for entry in wanted}
        positions = {row: position for position, row in enumerate(rows)}
        return self._lookup(wanted, origins, held, positions, named=True)

    def dropped(
        self, entry: Entry, numbers: Sequence[int], held: pa.RecordBatch
    ) -> list[Mapping[str, Any] | None]:
        """The JSON objects of rows the reader drops (a time in no window), where proven.

        ``numbers`` are their record numbers in ``entry``; ``held`` the rows as parsed.
        """
        wanted = {entry: {n: i for i, n in enumerate(numbers) if n != UNKNOWN}}
        with self._lock:
            origins = {entry: self._origins[entry]}
        found = self._lookup(wanted, origins, held, {i: i for i in range(len(numbers))})
        return [found.get(i) for i in range(len(numbers))]

    def _lookup(
        self,
        wanted: Mapping[Entry, Mapping[int, int]],
        origins: Mapping[Entry, _Origin],
        held: pa.RecordBatch,
        positions: Mapping[int, int],
        *,
        named: bool = False,
    ) -> dict[int, Mapping[str, Any]]:
        """Records of ``wanted`` (entry -> record number -> key), by key, proven theirs.

        ``positions`` gives each key's row in ``held``; ``named`` adds the file-name column.
        """
        lines: dict[int, tuple[Entry, dict[str, Any], bytes]] = {}  # key -> its line
        with self._reading:
            for entry in sorted(wanted, key=lambda e: origins[e].order):
                origin = origins[entry]
                if not wanted[entry] or origin.stat is None or _stat(entry) != origin.stat:
                    continue  # changed since it was read: its lines may be others now
                for number, (value, text) in self._read(entry, origin, set(wanted[entry])).items():
                    lines[wanted[entry][number]] = (entry, value, text)
        found: dict[int, Mapping[str, Any]] = {}
        for key in self._agreeing(lines, held, positions):
            entry, value, _ = lines[key]
            column = self.filename_column if named else None
            extra = {} if column is None else {column: entry.shown}
            found[key] = {**value, **extra}
        return found

    def _agreeing(
        self,
        lines: Mapping[int, tuple[Entry, dict[str, Any], bytes]],
        held: pa.RecordBatch,
        positions: Mapping[int, int],
    ) -> list[int]:
        """The keys whose line, parsed as the reader parses it, is exactly the held row."""
        import pyarrow as pa
        import pyarrow.json as pjson

        names = [name for name in held.schema.names if name != self.filename_column]
        expected = held.select(names)
        options = pjson.ParseOptions(
            explicit_schema=expected.schema, unexpected_field_behavior="ignore"
        )

        def parse(texts: list[bytes]) -> pa.RecordBatch | None:
            try:
                table = pjson.read_json(
                    pa.BufferReader(b"\n".join(texts) + b"\n"),
                    read_options=pjson.ReadOptions(use_threads=False),
                    parse_options=options,
                )
            except (pa.ArrowException, ValueError):
                return None
            if table.num_rows != len(texts):
                return None
            return table.combine_chunks().to_batches()[0] if texts else None

        order = sorted(lines)
        together = parse([lines[row][2] for row in order])
        agreeing = []
        for index, row in enumerate(order):
            mine = together.slice(index, 1) if together is not None else parse([lines[row][2]])
            if mine is not None and mine.equals(expected.slice(positions[row], 1)):
                agreeing.append(row)
        return agreeing

    def _read(
        self, entry: Entry, origin: _Origin, numbers: set[int]
    ) -> dict[int, tuple[dict[str, Any], bytes]]:
        for other in [e for e in self._cursors if self._origins[e].order < origin.order]:
            self._cursors.pop(other).close()  # the run's rows go through the entries in order
        cursor = self._cursors.get(entry)
        if cursor is None or cursor.next_record > min(numbers):
            if cursor is not None:
                cursor.close()
            cursor = self._cursors[entry] = RecordCursor(entry, self.blank)
        return cursor.read(numbers, origin)

    def close(self) -> None:
        """Close the files opened to read records again."""
        with self._reading:
            for cursor in self._cursors.values():
                cursor.close()
            self._cursors.clear()


class RecordCursor:
    """Reads an entry forward, record by record, proving each is one line's one value.

    What is proven is kept on the entry's :class:`_Origin`, so a cursor opened again (a
    row asked for after a later one) parses only the lines it wants up to that point.
    """

    def __init__(self, entry: Entry, blank: Callable[[bytes], bool]) -> None:
        self._stack = ExitStack()
        self._lines: Iterator[Line] = numbered_lines(
            open_stream(entry, self._stack), skip=0, blank=blank
        )
        self.next_record = 0

    def read(self, numbers: set[int], origin: _Origin) -> dict[int, tuple[dict[str, Any], bytes]]:
        """Objects and lines of records ``numbers`` (from ``next_record`` on), proven theirs."""
        found: dict[int, tuple[dict[str, Any], bytes]] = {}
        last = max(numbers)
        while self.next_record <= last:
            if origin.broken_at is not None and self.next_record >= origin.broken_at:
                break  # from there on rows and lines may not correspond
            line = next(self._lines, None)
            if line is None:
                break
            number = self.next_record
            self.next_record += 1
            if number in origin.rejected or (
                number < origin.proven_below and number not in numbers
            ):
                continue
            value = _one_value(line.text)
            if value is _NOT_ONE:
                origin.broken_at = number
                break
            origin.proven_below = max(origin.proven_below, number + 1)
            if number in numbers and isinstance(value, dict):
                found[number] = (value, line.text)
        return found

    def close(self) -> None:
        """Close the entry."""
        self._stack.close()


_NOT_ONE = object()


def _one_value(text: bytes) -> Any:
    """The JSON value ``text`` holds, or ``_NOT_ONE`` unless it is exactly one value."""
    try:
        return json.loads(text.decode("utf-8"))
    except ValueError:  # also UnicodeDecodeError and "Extra data" (two values)
        return _NOT_ONE
