"""Telling a reading statement from one that writes, before it is sent.

Read-only takes two locks, because neither holds alone.  The statement must be one that
reads (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS) and must not write its result to a
file (``INTO OUTFILE``, which the embedded engine honours); and it runs with ClickHouse's
``readonly = 2`` (:data:`READ_ONLY`), so the server refuses writes, DDL and lifting the
setting.  (``readonly = 2`` alone lets ``INSERT INTO FUNCTION file(...)`` through, and
``readonly = 1`` breaks the HTTP driver, which sends settings with every request.)  Used by
``runner query`` and by the ``custom_sql`` data checks.  On the embedded engine a
connection that ran with the setting stays read-only: give such statements a connection
of their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runner.errors import UsageError

READ_ONLY = {"readonly": 2}
READONLY_CODE = "Code: 164."
_ROW_STATEMENTS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`", re.DOTALL)
_INTO_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.IGNORECASE)


class ReadOnlyError(UsageError):
    """A statement that would write, refused in read-only mode (the CLI names the flag)."""


@dataclass(frozen=True)
class Statement:
    """One statement to run, and whether it returns rows."""

    sql: str
    returns_rows: bool

    @property
    def keyword(self) -> str:
        """The statement's first word, upper case."""
        return _first_word(self.sql)


def _first_word(sql: str) -> str:
    words = sql.lstrip("( \t\r\n").split(None, 1)
    return words[0].upper() if words else ""


def parse_statement(text: str) -> Statement:
    """The single statement in ``text`` (comments and a trailing ``;`` dropped)."""
    from runner.warehouse.sqltext import split_statements

    statements = split_statements(text)
    if not statements:
        raise UsageError("no SQL statement given")
    if len(statements) > 1:
        raise UsageError(
            f"one statement at a time: found {len(statements)} (the second starts on line "
            f"{statements[1].line})"
        )
    sql = statements[0].sql
    return Statement(sql, _first_word(sql) in _ROW_STATEMENTS)


def check_read_only(statement: Statement, *, refused_by: str = "runner query") -> None:
    """Refuse, before sending it, a statement that is not a plain read.

    ``refused_by`` names what is read-only, in the message.
    """
    if not statement.returns_rows:
        raise ReadOnlyError(f"{statement.keyword} is not a read ({refused_by} is read-only)")
    if _INTO_OUTFILE.search(_QUOTED.sub("''", statement.sql)):
        raise ReadOnlyError(f"INTO OUTFILE writes a file ({refused_by} is read-only)")
