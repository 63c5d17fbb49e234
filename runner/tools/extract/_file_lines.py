"""Rows that do not fit: reading a block of a text file line by line.

pyarrow parses a block of lines at once and fails the whole block on one row that does
not parse or does not fit the schema.  Such a block (see ``_file_text``) is parsed again
as lines: a run of lines that fails is halved until the lines that do not fit are found
one by one, the lines that fit are kept (in order) and the others are rejected with
their line number and reason, through :meth:`runner.pipeline.context.RunContext.reject`
(quarantine with a ``validate(on_error="skip")`` step, otherwise the run fails naming
the line).  A parser fails lines that do not give one row each (two JSON values on a
line, half of one), so every line is either one row or one rejection.

This only runs after an error, so the fast path of a clean file is pyarrow's alone.
CSV rows are lines here: quoted line breaks are refused by the CSV reader anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

_READ = 1 << 20
#: A UTF-8 byte order mark, dropped at the start of a file.
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Line:
    """One line of a file: its 1-based number and its bytes (without the line break).

    ``record`` counts the non-blank lines before it (a reader's 0-based row number when
    every line holds one record).
    """

    number: int
    text: bytes
    record: int = -1


@dataclass(frozen=True)
class Why:
    """Why a line does not fit, its record for the quarantine, and the value at fault."""

    reason: str
    record: dict[str, Any]
    column: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class Rejected:
    """A line that does not fit, and why."""

    line: Line
    why: Why

    @property
    def reason(self) -> str:
        """The reason, without file and line."""
        return self.why.reason


class LineParser(Protocol):
    """A format's parsing of whole lines into one table of the run's schema."""

    @property
    def fixed(self) -> object | None:
        """The types it parses with once they are fixed (None while they may change)."""

    def parse_block(self, data: bytes, *, first: bool) -> pa.Table:
        """Parse a block of whole lines at once, as pyarrow's reader would (the fast path).

        ``first``: the file's first block (it may show the file's columns).
        """

    def parse(self, lines: Sequence[bytes]) -> pa.Table:
        """Parse non-blank ``lines`` at once; raise unless each gives exactly one row."""

    def reject(self, line: bytes, error: Exception) -> Why:
        """Why ``line`` alone failed with ``error``, and its record for the quarantine."""

    def settle(self, lines: Sequence[bytes]) -> None:
        """Fix the schema from lines that parse one by one but not together."""

    def fix(self, table: pa.Table) -> None:
        """Keep the types of a parsed block for the blocks after it (if not yet fixed)."""


def is_blank_line(text: bytes) -> bool:
    """A line holding only JSON white space (skipped by the JSON reader)."""
    return not text.strip(b" \t\r\n")


def is_empty_line(text: bytes) -> bool:
    """An empty line (skipped by the CSV reader); spaces make a row."""
    return text in (b"", b"\r")


def numbered_lines(
    stream: pa.NativeFile, *, skip: int, blank: Callable[[bytes], bool]
) -> Iterator[Line]:
    """The stream's lines after its first ``skip`` non-blank ones, blank lines left out.

    Lines end at a line feed; a UTF-8 byte order mark at the start is dropped.
    """
    number = seen = 0
    parts: list[bytes] = []  # the current line, read so far (joined once: no quadratic copies)
    first = True
    while chunk := stream.read(_READ):
        if first:
            chunk = chunk.removeprefix(BOM)
            first = False
        *ends, rest = chunk.split(b"\n")
        for piece in ends:
            text = b"".join([*parts, piece]) if parts else piece
            parts = []
            number += 1
            if blank(text):
                continue
            seen += 1
            if seen > skip:
                yield Line(number, text.removesuffix(b"\r"), seen - 1)
        if rest:
            parts.append(rest)
    text = b"".join(parts)
    if text and not blank(text) and seen + 1 > skip:
        yield Line(number + 1, text.removesuffix(b"\r"), seen)


def blocks(lines: Iterator[Line], block_size: int) -> Iterator[list[Line]]:
    """Consecutive lines gathered into blocks of about ``block_size`` bytes."""
    block: list[Line] = []
    size = 0
    for line in lines:
        block.append(line)
        size += len(line.text) + 1
        if size >= block_size:
            yield block
            block, size = [], 0
    if block:
        yield block


def _split(
    block: Sequence[Line], parser: LineParser, errors: tuple[type[Exception], ...]
) -> tuple[list[Line], list[Rejected]]:
    """The lines that parse and the ones that do not, found by halving a failing run.

    A block with one bad line among 50,000 costs about two block parses (halves of
    halves), not 50,000 one-line parses.
    """
    try:
        parser.parse([line.text for line in block])
    except errors as exc:
        if len(block) == 1:
            return [], [Rejected(block[0], parser.reject(block[0].text, exc))]
        middle = len(block) // 2
        good, bad = _split(block[:middle], parser, errors)
        more_good, more_bad = _split(block[middle:], parser, errors)
        return good + more_good, bad + more_bad
    return list(block), []


@dataclass(frozen=True)
class Parsed:
    """A block's rows and the lines they were parsed from (one row per line if counts agree)."""

    table: pa.Table
    lines: list[Line]


def recover(
    lines: Iterator[Line],
    parser: LineParser,
    *,
    block_size: int,
    on_rejected: Callable[[list[Rejected]], None],
) -> Iterator[Parsed]:
    """Parse ``lines`` block by block; a failing block down to its bad lines.

    ``on_rejected`` is called with a block's bad lines before any row of that block is
    handed on, so a run that fails on them has loaded nothing after them.  The first
    block that parses fixes the types of inferred columns (``parser.fix``), as the first
    block does for pyarrow's own readers.
    """
    import pyarrow as pa

    errors = (pa.ArrowException, ValueError, UnicodeDecodeError)
    for block in blocks(lines, block_size):
        good = block
        try:
            table = parser.parse([line.text for line in block])
        except errors:
            good, bad = _split(block, parser, errors)
            table = None
            if good:
                try:
                    table = parser.parse([line.text for line in good])
                except errors:  # fine in parts, not together (types inferred per part)
                    parser.settle([line.text for line in good])
                    good, later = _split(good, parser, errors)
                    bad = sorted([*bad, *later], key=lambda r: r.line.number)
                    table = parser.parse([line.text for line in good]) if good else None
            if bad:
                on_rejected(bad)
            if table is None:
                continue
        parser.fix(table)
        yield Parsed(table, good)


def short(value: object, limit: int = 60) -> str:
    """A value for a message: its repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
