"""Reading SQL text the way ClickHouse's lexer does: code, quoted text and comments apart.

Splitting a file at semicolons, filling ``{{placeholders}}`` and recognising a statement's
kind must all skip string literals, quoted identifiers, heredocs and comments, or a ``;``
or a ``{{database}}`` inside a string would be taken for code.  One scanner serves all
three, so they cannot disagree about where a string ends.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum

# $tag$ ... $tag$ (the tag may be empty): ClickHouse's heredoc string literal.
_HEREDOC_TAG = re.compile(r"\$[A-Za-z0-9_]*\$")
_QUOTES = "'\"`"


class Part(StrEnum):
    """What a piece of SQL text is."""

    CODE = "code"
    QUOTED = "quoted"  # a string literal, a quoted identifier or a heredoc
    COMMENT = "comment"


@dataclass(frozen=True)
class Piece:
    """A run of text of one kind, and the line of the text it starts on."""

    part: Part
    text: str
    line: int


def scan(text: str) -> Iterator[Piece]:
    """Cut ``text`` into code, quoted and comment pieces, in order, losing nothing.

    Comments are ``--``, ``//``, ``#!`` and ``#`` followed by a space (to the end of the
    line) and ``/* */`` (nested, as ClickHouse allows).  Quotes are ``'``, ``"`` and
    `````, closed by the same character, with backslash escapes and doubled quotes.
    """
    i, n, line = 0, len(text), 1
    code_start = 0

    def flush_code(end: int) -> Iterator[Piece]:
        if end > code_start:
            chunk = text[code_start:end]
            yield Piece(Part.CODE, chunk, line - chunk.count("\n"))

    while i < n:
        end, part = _special_at(text, i)
        if part is None:
            if text[i] == "\n":
                line += 1
            i += 1
            continue
        yield from flush_code(i)
        chunk = text[i:end]
        yield Piece(part, chunk, line)
        line += chunk.count("\n")
        i = code_start = end
    yield from flush_code(n)


def _special_at(text: str, i: int) -> tuple[int, Part | None]:
    """Where a quoted or comment piece starting at ``i`` ends, or ``(i, None)`` for code."""
    ch, nxt = text[i], text[i + 1 : i + 2]
    if ch in _QUOTES:
        return _quote_end(text, i), Part.QUOTED
    if (
        (ch == "-" and nxt == "-")
        or (ch == "/" and nxt == "/")
        or (ch == "#" and nxt in {" ", "!"})
    ):
        end = text.find("\n", i)
        return (len(text) if end == -1 else end), Part.COMMENT
    if ch == "/" and nxt == "*":
        return _block_comment_end(text, i), Part.COMMENT
    if ch == "$":
        tag = _HEREDOC_TAG.match(text, i)
        if tag:
            end = text.find(tag.group(), tag.end())
            return (len(text) if end == -1 else end + len(tag.group())), Part.QUOTED
    return i, None


def _quote_end(text: str, i: int) -> int:
    quote, j, n = text[i], i + 1, len(text)
    while j < n:
        if text[j] == "\\":
            j += 2
            continue
        if text[j] == quote:
            if text[j + 1 : j + 2] != quote:
                return j + 1
            j += 1  # a doubled quote stands for one quote character
        j += 1
    return n


def _block_comment_end(text: str, i: int) -> int:
    depth, j, n = 0, i, len(text)
    while j < n:
        pair = text[j : j + 2]
        if pair == "/*":
            depth, j = depth + 1, j + 2
        elif pair == "*/":
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    return n


@dataclass(frozen=True)
class Statement:
    """One SQL statement (comments removed) and the line of its file it starts on."""

    sql: str
    line: int

    @property
    def checksum(self) -> str:
        """sha256 of the statement with white space folded (what resuming compares)."""
        import hashlib

        return hashlib.sha256(" ".join(self.sql.split()).encode("utf-8")).hexdigest()


def split_statements(text: str) -> list[Statement]:
    """Split SQL text at semicolons outside quotes and comments; comments are dropped."""
    statements: list[Statement] = []
    current: list[str] = []
    start: int | None = None

    def flush() -> None:
        nonlocal current, start
        sql = "".join(current).strip()
        if sql and start is not None:
            statements.append(Statement(sql, start))
        current, start = [], None

    for piece in scan(text):
        if piece.part is Part.COMMENT:
            current.append(" " if piece.text.startswith("/*") else "")
            continue
        if piece.part is Part.QUOTED:
            start = piece.line if start is None else start
            current.append(piece.text)
            continue
        line = piece.line
        for index, chunk in enumerate(piece.text.split(";")):
            if index:
                flush()
            if start is None and chunk.strip():
                start = line + chunk[: len(chunk) - len(chunk.lstrip())].count("\n")
            current.append(chunk)
            line += chunk.count("\n")
    flush()
    return statements


def substitute_code(sql: str, replace: Callable[[str], str]) -> str:
    """``sql`` with ``replace`` applied to its code only: quoted text and comments stay."""
    return "".join(
        replace(piece.text) if piece.part is Part.CODE else piece.text for piece in scan(sql)
    )
