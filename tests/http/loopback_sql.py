"""What the loopback server must know about a statement before chDB runs it.

ClickHouse's HTTP handler parses the statement itself; the loopback server leaves parsing
to the engine and only needs the shape of the text: the statement's first keyword, where
the inline data of an ``INSERT ... FORMAT X`` / ``INSERT ... VALUES`` begins (everything
after it is data, possibly binary), the output format a trailing ``FORMAT`` clause asks
for, and whether a second statement follows a ``;`` (the HTTP interface runs one
statement per request; chDB alone would happily run several).

The scanner knows ClickHouse's lexical rules that matter for that: single-quoted strings
with backslash escapes and doubled quotes, back-quoted and double-quoted identifiers,
``--``, ``#`` and ``/* */`` comments, and parentheses.  It scans the text as Latin-1, so a
character index is a byte index and binary data after the SQL is never decoded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: First keywords of statements that answer with rows (and so get X-ClickHouse-Format).
ROW_STATEMENTS = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS", "CHECK"}
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = " \t\r\n\f\v"


class StatementError(ValueError):
    """The text is not one statement the server can hand to the engine."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Statement:
    """The shape of one statement.

    ``sql_end`` is where the statement's SQL ends: for an insert with inline data, the
    position of its ``FORMAT``/``VALUES`` keyword; ``data_start`` is where the data
    begins (None without inline data).
    """

    keyword: str
    sql_end: int
    insert_format: str | None = None
    data_start: int | None = None
    output_format: str | None = None

    @property
    def returns_rows(self) -> bool:
        """Whether the statement answers with a result set."""
        return self.keyword in ROW_STATEMENTS


def _skip_quoted(text: str, pos: int, quote: str) -> int:
    """Index after the literal or identifier opened by ``quote`` at ``pos``."""
    i = pos + 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == quote:
            if text.startswith(quote, i + 1):  # a doubled quote stands for itself
                i += 2
                continue
            return i + 1
        i += 1
    raise StatementError(62, f"Syntax error: unterminated {quote} at position {pos + 1}")


def _skip_comment(text: str, pos: int) -> int | None:
    """Index after a comment starting at ``pos``, or None if none starts there."""
    if text.startswith("--", pos) or text.startswith("#", pos):
        end = text.find("\n", pos)
        return len(text) if end < 0 else end + 1
    if text.startswith("/*", pos):
        end = text.find("*/", pos + 2)
        if end < 0:
            raise StatementError(62, f"Syntax error: unterminated comment at position {pos + 1}")
        return end + 2
    return None


def _tokens(text: str, start: int = 0):
    """Yield (kind, value, start, end) for words, quoted names, strings and symbols."""
    i = start
    while i < len(text):
        char = text[i]
        if char in _SPACE:
            i += 1
            continue
        after_comment = _skip_comment(text, i)
        if after_comment is not None:
            i = after_comment
            continue
        if char in "'\"`":
            end = _skip_quoted(text, i, char)
            yield ("string" if char == "'" else "name", text[i:end], i, end)
            i = end
            continue
        word = _WORD.match(text, i)
        if word:
            yield ("word", word.group(), i, word.end())
            i = word.end()
            continue
        yield ("symbol", char, i, i + 1)
        i += 1


def _data_start(text: str, pos: int) -> int:
    """Inline data begins after blanks up to and including the first line break."""
    while pos < len(text) and text[pos] in " \t\r":
        pos += 1
    if pos < len(text) and text[pos] == "\n":
        pos += 1
    return pos


def shape(text: str) -> Statement:
    """The shape of the single statement in ``text`` (Latin-1 decoded request text)."""
    tokens = _tokens(text)
    first = next(tokens, None)
    depth = 0
    while first is not None and first[1] == "(":  # (SELECT ...) UNION ...
        depth += 1
        first = next(tokens, None)
    if first is None:
        raise StatementError(62, "Empty query")
    keyword = first[1].upper() if first[0] == "word" else first[1]
    output_format: str | None = None
    insert_select = False
    for kind, value, start, end in tokens:
        if kind == "symbol" and value in "()":
            depth += 1 if value == "(" else -1
        elif kind == "symbol" and value == ";" and depth == 0:
            rest = next(_tokens(text, end), None)
            if rest is not None:
                raise StatementError(
                    62,
                    "Syntax error (Multi-statements are not allowed): failed at position "
                    f"{rest[2] + 1}",
                )
            return Statement(keyword, start, output_format=output_format)
        elif kind == "word" and depth == 0:
            upper = value.upper()
            if keyword == "INSERT" and upper in {"SELECT", "WITH"}:
                insert_select = True
            inline = keyword == "INSERT" and not insert_select
            if inline and upper == "VALUES":
                return Statement(keyword, start, "Values", end)
            if upper == "FORMAT":
                name = next(tokens, None)
                if name is None or name[0] != "word":
                    raise StatementError(62, f"Syntax error: no format name at position {end}")
                if inline:
                    return Statement(keyword, start, name[1], _data_start(text, name[3]))
                output_format = name[1]
    return Statement(keyword, len(text), output_format=output_format)
