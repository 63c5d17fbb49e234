"""Reading a text file (CSV, JSON Lines) block by block, and a block that fails line by line.

A file is cut into blocks of whole lines (``_file_blocks``) and each block is parsed at
once by pyarrow (the fast path: about what pyarrow's own streaming reader costs).  A
block is handed on only when its rows are proven to be one per line, so every row's
line is known.  A block that does not parse, that holds a row the reader must not let
through (``check_batch``), or whose rows and lines part, is read again line by line
(``_file_lines.recover``): its good lines are handed on, its bad ones rejected through
``ctx.reject`` with file, line and reason (quarantined with a
``validate(on_error="skip")`` step, otherwise the run fails naming the line).  The next
block starts where that one ended, so no row is read twice or skipped, whatever the
layout of the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, ClassVar, cast

from runner.errors import printable
from runner.tools.extract._file_ahead import Outcome, ParseAhead, parsed
from runner.tools.extract._file_archives import open_stream
from runner.tools.extract._file_blocks import (
    Count,
    LineTooLong,
    block_lines,
    cut_blocks,
    line_breaks,
)
from runner.tools.extract._file_lines import Line, LineParser, Rejected, recover
from runner.tools.extract._file_options import DEFAULT_BLOCK_SIZE
from runner.tools.extract._file_source import (
    FileSource,
    Piece,
    Reading,
    RowLines,
)

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass
class Place:
    """Where the next block of a file starts: its line (1-based) and record number."""

    line: int = 1
    record: int = 0

    def advance(self, count: Count) -> None:
        """Move past a block of ``count`` lines."""
        self.line += count.lines
        self.record += count.records


@dataclass
class Start:
    """A file's parser, and what its first block holds before the rows (a CSV header)."""

    parser: LineParser
    rest: bytes  # the first block without the header
    skipped: Count  # the header's lines (with empty lines before it) and its record
    columns: pa.Schema | None = None  # the header's columns, to check when opening
    opened: bool = False  # whether the file's columns were checked
    begun: bool = False  # whether a block of rows was read (the first may name columns)


class TextSource(FileSource):
    """CSV and JSON Lines: files parsed in blocks of whole lines, bad rows rejected."""

    #: Whether a lone ``\r`` ends a line (CSV, as pyarrow's CSV reader has it).
    universal: ClassVar[bool] = False
    #: Blocks parsed ahead on worker threads once the types are fixed (see _file_ahead).
    parse_ahead: ClassVar[int] = 0
    block_size: int = DEFAULT_BLOCK_SIZE

    def start(self, first: bytes, target: pa.Schema | None) -> Start | None:
        """The parser of one file, given its first block and the run's schema so far.

        None while the file has shown only lines before its header (CSV).
        """
        raise NotImplementedError

    def layout(self, data: bytes, rows: int) -> Count | None:
        """The block's count if its ``rows`` are one per non-blank line, else None."""
        raise NotImplementedError

    def merged_lines(
        self, data: bytes, place: Place, parser: LineParser, *, known: bool
    ) -> str | None:
        """Why a block with a row over several lines fails the run (None: read by line).

        ``known``: its rows and lines were seen to part; otherwise the block failed on a
        row, and the reader may look for such a row before reading it line by line.
        """
        del data, place, parser, known
        return None

    def is_row_error(self, exc: Exception) -> bool:
        """Whether ``exc`` is about a row, so the block can be read line by line."""
        del exc
        return False

    def row_hint(self, rejected: Rejected) -> str:
        """What to change, added to the message when a rejected row fails the run."""
        del rejected
        return ""

    # -- reading ---------------------------------------------------------------------

    def pieces(self, reading: Reading) -> Iterator[Piece]:
        """The file's rows, block by block; a block that does not fit line by line."""
        import pyarrow as pa

        entry = reading.entry
        place = Place()
        start: Start | None = None
        try:
            ahead = ParseAhead(self.parse_ahead, reading.stack)
            for block in self._read(reading, ahead):
                data = block
                if start is None:
                    start, data = self._begin(block, place, reading)
                if start is None or not data:
                    continue
                parser = start.parser
                state = parser.fixed
                if self.parse_ahead and start.begun and state is not None:
                    parse = partial(self._parse_block, parser, first=False)
                    for ready, outcome in ahead.submit(data, parse, state):
                        yield from self._block(ready, start, place, reading, outcome)
                    continue
                for ready, outcome in ahead.drain():
                    yield from self._block(ready, start, place, reading, outcome)
                yield from self._block(data, start, place, reading, None)
            if start is not None:
                for ready, outcome in ahead.drain():
                    yield from self._block(ready, start, place, reading, outcome)
            ahead.raise_failure()  # after the blocks before it: they may fail first
        except LineTooLong:
            raise self.error(
                entry.shown,
                f"line {place.line} is longer than block_size ({self.block_size} bytes); "
                "raise block_size= above the longest row",
            ) from None
        except (pa.ArrowException, OSError) as exc:
            raise self.error(entry.shown, self.explain(exc, entry, reading.rows)) from exc
        if start is None:
            reading.ctx.log.info("file is empty", path=entry.shown)

    def _read(self, reading: Reading, ahead: ParseAhead) -> Iterator[bytes]:
        """The file's blocks; a read that fails ends them and is kept in ``ahead``."""
        import pyarrow as pa

        stream = open_stream(reading.entry, reading.stack)
        try:
            yield from cut_blocks(stream, self.block_size, universal=self.universal)
        except (LineTooLong, pa.ArrowException, OSError) as exc:
            ahead.failure = exc

    def _begin(self, block: bytes, place: Place, reading: Reading) -> tuple[Start | None, bytes]:
        """The file's start from its first block, and the block's rows (after a header)."""
        start = self.start(block, reading.shape.target)
        if start is None:  # empty lines before a header
            place.advance(Count(line_breaks(block, universal=self.universal), 0))
            return None, b""
        place.advance(start.skipped)
        if start.columns is not None:
            self.open_checks(start.columns, reading.shape, reading.entry.shown)
            start.opened = True
        return start, start.rest

    def _parse_block(
        self, parser: LineParser, data: bytes, *, first: bool
    ) -> tuple[pa.Table, Count | None]:
        """A block parsed at once, and its count if its rows are one per line."""
        table = parser.parse_block(data, first=first)
        return table, self.layout(data, table.num_rows)

    def _block(
        self,
        data: bytes,
        start: Start,
        place: Place,
        reading: Reading,
        outcome: Outcome | None,
    ) -> Iterator[Piece]:
        """One block's pieces: parsed at once if it fits, else line by line.

        ``outcome`` is the block parsed ahead, if it was (and is still of use).
        """
        import pyarrow as pa

        parser = start.parser
        first = not start.begun
        start.begun = True
        if outcome is None or outcome.state is not parser.fixed:
            outcome = parsed(partial(self._parse_block, parser, first=first), data, parser.fixed)
        table, exc, count = outcome.table, outcome.error, outcome.count
        if isinstance(exc, UnicodeDecodeError) or (
            exc is not None and not isinstance(exc, pa.ArrowException | ValueError)
        ):
            raise exc
        if exc is not None and not self.is_row_error(exc):
            raise self.error(reading.entry.shown, self.explain(exc, reading.entry, 0)) from exc
        if table is None or count is None:
            fatal = self.merged_lines(data, place, parser, known=table is not None)
            if fatal is not None:
                raise self.error(reading.entry.shown, fatal)
        if table is not None and count is not None:
            pieces = self._fast(table, data, start, place, reading)
            if pieces is not None:
                place.advance(count)
                yield from pieces
                return
        yield from self._by_line(data, parser, place, reading)

    def _fast(
        self, table: pa.Table, data: bytes, start: Start, place: Place, reading: Reading
    ) -> list[Piece] | None:
        """The pieces of a block parsed at once, or None if one must not be let through."""
        if not table.num_rows:
            return []
        shown = reading.entry.shown
        if not start.opened:
            self.open_checks(table.schema, reading.shape, shown)
            start.opened = True
        batches = [self.conformed(batch, reading.shape, shown) for batch in table.to_batches()]
        if any(self.check_batch(batch) is not None for batch in batches):
            return None
        start.parser.fix(table)
        lines = _BlockLines(data, place.line, self)
        pieces = []
        first = 0
        for batch in batches:
            records = range(place.record + first, place.record + first + batch.num_rows)
            pieces.append(Piece(batch, records, lines.shifted(first)))
            first += batch.num_rows
        return pieces

    def _by_line(
        self, data: bytes, parser: LineParser, place: Place, reading: Reading
    ) -> Iterator[Piece]:
        """A block read line by line: good lines on, bad ones rejected, in order."""
        import pyarrow as pa

        entry, ctx = reading.entry, reading.ctx
        ctx.log.info(
            "reading a block line by line: a row does not fit", path=entry.shown, line=place.line
        )
        lines = block_lines(
            data,
            first_line=place.line,
            first_record=place.record,
            blank=self.blank,
            universal=self.universal,
        )
        place.advance(Count(line_breaks(data, universal=self.universal), len(lines)))

        def rejected(bad: list[Rejected]) -> None:
            if reading.origins is not None:
                reading.origins.rejected(entry, [r.line.record for r in bad])
            reasons = [
                printable(f"{self.label} file {entry.shown}: line {r.line.number}: {r.reason}")
                for r in bad
            ]
            if ctx.reject_sink is None:  # the run fails on the first: say what to change
                reasons[0] += self.row_hint(bad[0])
            ctx.reject([r.why.record for r in bad], reasons, step=self.step_name)

        for part in recover(iter(lines), parser, block_size=self.block_size, on_rejected=rejected):
            if part.table.num_rows != len(part.lines):  # the parsers refuse this
                raise self.error(entry.shown, "rows and lines differ while reading line by line")
            offset = 0
            for raw in part.table.to_batches():
                batch = self.conformed(raw, reading.shape, entry.shown)
                mine = part.lines[offset : offset + batch.num_rows]
                offset += batch.num_rows
                problem = self.check_batch(batch)
                if problem is not None:
                    row, reason = problem
                    where = f"line {mine[row].number}: " if row is not None else ""
                    raise self.error(entry.shown, where + reason)
                records = cast("pa.Int64Array", pa.array([ln.record for ln in mine], pa.int64()))
                yield Piece(batch, records, _numbers(mine))


def _numbers(lines: list[Line]) -> RowLines:
    numbers = [line.number for line in lines]
    return numbers.__getitem__


class _BlockLines:
    """The line of each row of a block parsed at once (found only when a message asks)."""

    def __init__(self, data: bytes, first_line: int, source: TextSource) -> None:
        self.data = data
        self.first_line = first_line
        self.source = source
        self.numbers: list[int] | None = None

    def shifted(self, offset: int) -> RowLines:
        """The lines of the rows of a batch that starts at row ``offset`` of the block."""
        return lambda row: self.line(offset + row)

    def line(self, row: int) -> int:
        """The line of row ``row`` of the block."""
        if self.numbers is None:
            lines = block_lines(
                self.data,
                first_line=self.first_line,
                first_record=0,
                blank=self.source.blank,
                universal=self.source.universal,
            )
            self.numbers = [line.number for line in lines]
        return self.numbers[row]
