r"""Text files cut into blocks of whole lines, and proof that each line holds one row.

The CSV and JSON Lines readers parse a file one block at a time: about ``block_size``
bytes, cut after the block's last line break, so every row a block yields came from that
block's own bytes.  When a block holds a row that does not fit, only that block is read
again line by line; the blocks before it are done and the ones after it start exactly
where it ends.  No row count is ever turned back into a place in the file, so a file
whose rows and lines part (two JSON values on one line, one spread over two lines, blank
lines, a CSV value holding a line break) can neither lose nor repeat a row.

A block that parses is also checked to hold exactly one row per (non-blank) line, so the
rows' line numbers are known (for messages, and for the quarantine's source records).
For JSON Lines a block parsed into ``R`` rows holds one object per line when it has ``R``
non-blank lines, each starting with ``{`` and ending with ``}`` (after white space): a
value cannot continue past a line ending in ``}`` onto one starting with ``{``, and a
JSON string cannot hold a raw line break, so no value spans lines and each line holds
at least one.  A CSV line holds at most one row (rows end at line breaks outside
quotes), so ``R`` rows in ``R`` non-empty lines is one each; fewer rows mean a quoted
value holds a line break.  The common layouts (LF or CRLF line ends, no blank lines, no
white space around the values) are checked with a few vectorised passes over the block
(about 1 ms per 4 MiB); others line by line in Python.

Lines end at ``\n`` (JSON Lines; a ``\r`` before it is white space) or, for CSV, at
``\n``, ``\r\n`` or a lone ``\r`` as pyarrow's CSV reader has them.  A UTF-8 byte order
mark at the start of a file is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.tools.extract._file_lines import BOM, Line

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa

_LF, _CR, _OPEN, _CLOSE = 10, 13, ord("{"), ord("}")
_JSON_SPACE = b" \t\r"


class LineTooLong(Exception):  # noqa: N818 - a signal to the reader, which names the line
    """The line after the last block handed on does not end within ``block_size`` bytes."""


@dataclass(frozen=True)
class Count:
    """What a block holds: line breaks, and lines that hold a record (non-blank ones)."""

    lines: int
    records: int


def cut_blocks(stream: pa.NativeFile, block_size: int, *, universal: bool) -> Iterator[bytes]:
    """The stream's bytes (without a leading BOM) in blocks of whole lines.

    Each block but the last ends with a line break; a block is at most ``block_size``
    bytes plus the start of a line the previous block could not hold.  A line that goes
    on past ``block_size`` bytes without a break raises :class:`LineTooLong`, so memory
    stays bounded by the block size.
    """
    carry = b""  # the start of a line not ended yet
    first = True
    while True:
        chunk = stream.read(block_size)
        if first:
            chunk = chunk.removeprefix(BOM)
            first = False
        if not chunk:
            if carry:
                yield carry
            return
        cut = chunk.rfind(b"\n")
        if universal:  # a lone \r ends a line too, unless it may be the start of \r\n
            cut = max(cut, chunk.rfind(b"\r", 0, len(chunk) - 1))
        if cut < 0:
            carry += chunk
            if len(carry) > block_size:
                raise LineTooLong
            continue
        yield carry + chunk[: cut + 1]  # one copy of the block
        carry = chunk[cut + 1 :]


def line_breaks(data: bytes, *, universal: bool) -> int:
    """How many lines ``data`` ends (line breaks, a CRLF counting once)."""
    count = data.count(b"\n")
    if universal and b"\r" in data:
        count += data.count(b"\r") - data.count(b"\r\n")
    return count


def line_texts(data: bytes, *, universal: bool) -> list[bytes]:
    r"""The lines of ``data`` without their breaks (and without a CRLF's ``\r``)."""
    if universal:
        return data.splitlines()
    texts = data.split(b"\n")
    if texts[-1] == b"":
        texts.pop()  # data ended with a line break: no line after it
    return [text.removesuffix(b"\r") for text in texts]


def block_lines(
    data: bytes,
    *,
    first_line: int,
    first_record: int,
    blank: Callable[[bytes], bool],
    universal: bool,
) -> list[Line]:
    """The non-blank lines of a block whose first line is ``first_line`` (1-based).

    ``first_record`` is the number of non-blank lines of the file before the block.
    """
    lines = []
    record = first_record
    for number, text in enumerate(line_texts(data, universal=universal), first_line):
        if blank(text):
            continue
        lines.append(Line(number, text, record))
        record += 1
    return lines


def split_header(data: bytes) -> tuple[bytes | None, int, bytes]:
    """A CSV block's header (its first non-empty line), line breaks up to it, the rest.

    pyarrow skips empty lines before a header as it does between rows.
    """
    lines = 0
    position = 0
    while position < len(data):
        end = _line_end(data, position)
        if end == position:  # an empty line
            lines += 1
            position = _after_break(data, end)
            continue
        header = data[position:end]
        rest = _after_break(data, end)
        return header, lines + (1 if rest > end else 0), data[rest:]
    return None, lines, b""


def _line_end(data: bytes, start: int) -> int:
    """Where the line starting at ``start`` ends (its break, or the end of ``data``)."""
    ends = [found for found in (data.find(b"\n", start), data.find(b"\r", start)) if found >= 0]
    return min(ends) if ends else len(data)


def _after_break(data: bytes, end: int) -> int:
    """Where the next line starts after the break at ``end`` (CRLF taken whole)."""
    if data.startswith(b"\r\n", end):
        return end + 2
    return min(end + 1, len(data))


def json_layout(data: bytes, rows: int) -> Count | None:
    """The block's count if each of its non-blank lines holds exactly one JSON object.

    ``rows`` is the number of rows the whole block parsed into.
    """
    if data[:1] == b"{":  # the common layout, checked without a Python loop
        fast = _plain_object_lines(data, rows)
        if fast is not None:
            return fast
    texts = line_texts(data, universal=False)
    records = 0
    for text in texts:
        value = text.strip(_JSON_SPACE)
        if not value:
            continue
        if value[:1] != b"{" or value[-1:] != b"}":
            return None
        records += 1
    return Count(data.count(b"\n"), records) if records == rows else None


def _plain_object_lines(data: bytes, rows: int) -> Count | None:
    """:func:`json_layout` for blocks of ``{...}`` lines ending in LF or CRLF, else None."""
    import numpy as np

    array = np.frombuffer(data, np.uint8)
    breaks = np.flatnonzero(array == _LF)
    open_end = data[-1:] != b"\n"  # the file's last line, without a line break
    if len(breaks) + open_end != rows:
        return None
    ends = breaks - 1
    ends = ends - (array[ends] == _CR)  # a CRLF's \r is not the value's last byte
    if not (array[ends] == _CLOSE).all():
        return None
    starts = breaks[:-1] + 1 if not open_end else breaks + 1
    if not (array[starts] == _OPEN).all():
        return None
    if open_end and data[-256:].rstrip(_JSON_SPACE)[-1:] != b"}":
        return None
    return Count(len(breaks), rows)


def csv_layout(data: bytes, rows: int) -> Count | None:
    """The block's count if each of its non-empty lines holds exactly one CSV row."""
    if b"\r" not in data:
        import numpy as np

        breaks = np.flatnonzero(np.frombuffer(data, np.uint8) == _LF)
        if not _has_empty_line(breaks):
            records = len(breaks) + (data[-1:] != b"\n")
            return Count(len(breaks), records) if records == rows else None
    records = sum(1 for text in line_texts(data, universal=True) if text)
    return Count(line_breaks(data, universal=True), records) if records == rows else None


def _has_empty_line(breaks: npt.NDArray[np.intp]) -> bool:
    """Whether two line feeds follow each other, or the block starts with one."""
    import numpy as np

    return bool(len(breaks) and (breaks[0] == 0 or (np.diff(breaks) == 1).any()))


def unbalanced_line(data: bytes, first_line: int) -> int | None:
    """The first line of a CSV block with an odd number of quotes (where a value opens)."""
    for number, text in enumerate(line_texts(data, universal=True), first_line):
        if text.count(b'"') % 2:
            return number
    return None
