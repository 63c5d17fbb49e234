"""What running a migration statement twice would do, read from the statement itself.

A migrator killed while a statement runs cannot know whether the statement took effect.
Each statement is therefore classified before it runs:

* ``RERUN`` — running it again leaves the same schema: ``IF [NOT] EXISTS`` forms,
  ``CREATE OR REPLACE``, declarative ``ALTER … MODIFY``/``COMMENT``/``MATERIALIZE``,
  ``TRUNCATE``, ``OPTIMIZE``, ``GRANT``, reads.
* ``CHECK`` — its effect can be looked up in ``system.tables``, ``system.databases``,
  ``system.columns``, ``system.data_skipping_indices`` or ``system.projections``: plain
  ``CREATE``/``DROP`` of tables, views, dictionaries and databases, ``RENAME TABLE``,
  ``ALTER … ADD/DROP/RENAME COLUMN``, ``ADD/DROP INDEX``, ``ADD/DROP PROJECTION``.
* ``ASK`` — neither (``INSERT``, ``ALTER … UPDATE/DELETE`` mutations, partition moves,
  ``CREATE … AS SELECT``/``POPULATE``, anything not recognised): after a kill the operator
  checks and says whether it took effect (``runner migrate resolve``).

The reading is deliberately shallow (keywords at the statement's top level); whatever it
does not recognise is ``ASK``, so a mistake costs a question, never a statement run twice.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import IntEnum

from runner.warehouse.sqltext import Part, scan

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|\S")

# ALTER TABLE commands that are declarations: running them again changes nothing more.
_RERUN_ALTER = {
    ("MODIFY", "COLUMN"),
    ("MODIFY", "TTL"),
    ("MODIFY", "SETTING"),
    ("MODIFY", "COMMENT"),
    ("MODIFY", "ORDER"),
    ("MODIFY", "SAMPLE"),
    ("MODIFY", "QUERY"),
    ("MODIFY", "REFRESH"),
    ("MODIFY", "STATISTICS"),
    ("RESET", "SETTING"),
    ("REMOVE", "TTL"),
    ("REMOVE", "SAMPLE"),
    ("COMMENT", "COLUMN"),
    ("ALTER", "COLUMN"),
    ("MATERIALIZE", "INDEX"),
    ("MATERIALIZE", "PROJECTION"),
    ("MATERIALIZE", "COLUMN"),
    ("MATERIALIZE", "TTL"),
    ("MATERIALIZE", "STATISTICS"),
    ("CLEAR", "INDEX"),
    ("CLEAR", "PROJECTION"),
    ("CLEAR", "COLUMN"),
    ("CLEAR", "STATISTICS"),
    ("DROP", "PARTITION"),
    ("DROP", "PART"),
    ("DROP", "DETACHED"),
}
# ALTER TABLE commands that an IF [NOT] EXISTS makes harmless to run again.
_GUARDABLE_ALTER = {
    (verb, what)
    for verb in ("ADD", "DROP")
    for what in ("COLUMN", "INDEX", "PROJECTION", "CONSTRAINT", "STATISTICS")
} | {("RENAME", "COLUMN")}
_ALTER_OBJECTS = {"COLUMN": "column", "INDEX": "index", "PROJECTION": "projection"}
_TABLE_OBJECTS = {"TABLE", "VIEW", "DICTIONARY"}
_RERUN_HEADS = {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN"}
_RERUN_HEADS |= {"OPTIMIZE", "TRUNCATE", "GRANT", "REVOKE", "SET", "USE"}


class Safety(IntEnum):
    """How a statement whose outcome is unknown can be settled (worst is highest)."""

    RERUN = 0
    CHECK = 1
    ASK = 2


@dataclass(frozen=True)
class Effect:
    """One fact a statement establishes, checkable in the system tables.

    ``what`` is ``database``, ``table``, ``column``, ``index`` or ``projection``;
    ``present`` says whether the statement makes the object exist or go away.  A rename
    is two effects: the new name present, the old one absent.
    """

    what: str
    database: str | None
    table: str
    name: str = ""
    present: bool = True

    def describe(self) -> str:
        """The object in words, for messages."""
        table = f"{self.database}.{self.table}" if self.database else self.table
        if self.what in {"database", "table"}:
            return f"{self.what} {self.table if self.what == 'database' else table}"
        return f"{self.what} {self.name} of {table}"


@dataclass(frozen=True)
class StatementKind:
    """A statement's kind, how to settle an unknown outcome, and what to tell an operator."""

    label: str
    safety: Safety
    effects: tuple[Effect, ...] = ()
    # A rejected run may still have left part of its effect (rows of an INSERT … SELECT,
    # a registered mutation): a failure leaves it for the operator too.
    partial_on_error: bool = False
    check_hint: str = ""


@dataclass
class _Tokens:
    """Upper-cased words and unquoted identifiers of a statement's code, at depth 0 or not."""

    items: list[tuple[str, str, int]]  # (upper word or symbol, original text, paren depth)
    pos: int = 0

    def peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.items[index][0] if index < len(self.items) else ""

    def take(self, *words: str) -> bool:
        """Consume ``words`` if they come next (in order)."""
        if all(self.peek(i) == w for i, w in enumerate(words)):
            self.pos += len(words)
            return True
        return False

    def name(self) -> tuple[str | None, str]:
        """A possibly qualified name: ``db.t`` → ("db", "t"); ``t`` → (None, "t")."""
        first = self._identifier()
        if self.peek() == ".":
            self.pos += 1
            return first, self._identifier()
        return None, first

    def _identifier(self) -> str:
        if self.pos >= len(self.items):
            return ""
        _, text, _ = self.items[self.pos]
        self.pos += 1
        return text

    def rest_upper(self) -> list[str]:
        return [word for word, _, depth in self.items[self.pos :] if depth == 0]


def _tokens(sql: str) -> _Tokens:
    items: list[tuple[str, str, int]] = []
    depth = 0
    for piece in scan(sql):
        if piece.part is Part.COMMENT:
            continue
        if piece.part is Part.QUOTED:
            quote = piece.text[0]
            body = piece.text[1:-1] if len(piece.text) > 1 else ""
            if quote in '`"':  # a quoted identifier: its name, never a keyword
                items.append(("\0" + body, _unquote(body, quote), depth))
            else:
                items.append(("\0'", piece.text, depth))
            continue
        for match in _WORD.finditer(piece.text):
            word = match.group()
            if word == ")":
                depth -= 1
            items.append((word.upper(), word, depth))
            if word == "(":
                depth += 1
    return _Tokens(items)


def _unquote(body: str, quote: str) -> str:
    return re.sub(r"\\(.)", r"\1", body).replace(quote * 2, quote)


def classify(sql: str) -> StatementKind:
    """The kind of one statement (placeholders filled, comments removed or not)."""
    tokens = _tokens(sql)
    head = tokens.peek()
    reader = _READERS.get(head)
    if reader is not None:
        return reader(tokens)
    if head in _RERUN_HEADS:
        return StatementKind(head, Safety.RERUN)
    return _ask(head or "statement", "whether it took effect")


def _insert(tokens: _Tokens) -> StatementKind:
    rest = tokens.rest_upper()
    return _ask(
        "INSERT",
        "whether its rows are in the target table (count them)",
        partial="SELECT" in rest or "WITH" in rest,
    )


def _mutation(tokens: _Tokens) -> StatementKind:
    return _ask(
        f"{tokens.peek()} (a mutation)",
        "system.mutations for the table (is_done, latest_fail_reason) and the data",
        partial=True,
    )


def _ask(label: str, hint: str, *, partial: bool = False) -> StatementKind:
    return StatementKind(label, Safety.ASK, partial_on_error=partial, check_hint=hint)


def _create(tokens: _Tokens) -> StatementKind:
    tokens.take("CREATE")
    replace = tokens.take("OR", "REPLACE")
    tokens.take("TEMPORARY")
    what = tokens.peek()
    if what == "MATERIALIZED" or (what in {"LIVE", "WINDOW"} and tokens.peek(1) == "VIEW"):
        tokens.pos += 1
        what = "VIEW"
    tokens.pos += 1
    label = f"CREATE {what}"
    if_not_exists = tokens.take("IF", "NOT", "EXISTS")
    database, name = tokens.name()
    rest = tokens.rest_upper()
    fills = "POPULATE" in rest or (what == "TABLE" and _as_select(rest) and "EMPTY" not in rest)
    if fills and not replace:
        return _ask(
            f"{label} … with data",
            f"whether {_qualified(database, name)} exists and holds all the rows",
            partial=True,
        )
    if replace or if_not_exists:
        return StatementKind(label, Safety.RERUN)
    if what in _TABLE_OBJECTS:
        return StatementKind(label, Safety.CHECK, (Effect("table", database, name),))
    if what == "DATABASE":
        return StatementKind(label, Safety.CHECK, (Effect("database", None, name),))
    return _ask(label, f"whether {name} exists")


def _as_select(rest: list[str]) -> bool:
    return any(a == "AS" and b in {"SELECT", "WITH", "("} for a, b in itertools.pairwise(rest))


def _drop(tokens: _Tokens) -> StatementKind:
    tokens.take("DROP")
    tokens.take("TEMPORARY")
    what = tokens.peek()
    tokens.pos += 1
    label = f"DROP {what}"
    if tokens.take("IF", "EXISTS"):
        return StatementKind(label, Safety.RERUN)
    if what in _TABLE_OBJECTS or what == "DATABASE":
        effects = []
        while True:
            database, name = tokens.name()
            if what == "DATABASE":
                effects.append(Effect("database", None, name, present=False))
            else:
                effects.append(Effect("table", database, name, present=False))
            if not tokens.take(","):
                break
        return StatementKind(label, Safety.CHECK, tuple(effects))
    return _ask(label, "whether it is gone")


def _rename(tokens: _Tokens) -> StatementKind:
    tokens.take("RENAME")
    what = tokens.peek()
    if what not in _TABLE_OBJECTS:
        return _ask(f"RENAME {what}", "which of the two names exists")
    tokens.pos += 1
    effects: list[Effect] = []
    while True:
        old_db, old = tokens.name()
        if not tokens.take("TO"):
            return _ask(f"RENAME {what}", "which of the two names exists")
        new_db, new = tokens.name()
        effects += [Effect("table", new_db, new), Effect("table", old_db, old, present=False)]
        if not tokens.take(","):
            break
    return StatementKind(f"RENAME {what}", Safety.CHECK, tuple(effects))


def _alter(tokens: _Tokens) -> StatementKind:
    tokens.take("ALTER")
    tokens.take("TEMPORARY")
    if not tokens.take("TABLE"):
        return _ask(f"ALTER {tokens.peek()}", "whether it took effect")
    database, table = tokens.name()
    if tokens.take("ON", "CLUSTER"):
        tokens.name()
    commands = _split_commands(tokens)
    kinds = [_alter_command(command, database, table) for command in commands]
    if not kinds:
        return _ask("ALTER TABLE", "whether it took effect")
    worst = max(kinds, key=lambda k: k.safety)
    if worst.safety is Safety.ASK:
        return replace(worst, label=f"ALTER TABLE … {worst.label}")
    effects = tuple(e for k in kinds for e in k.effects)
    labels = list(dict.fromkeys(k.label for k in kinds))
    return StatementKind(f"ALTER TABLE … {', '.join(labels)}", worst.safety, effects)


def _split_commands(tokens: _Tokens) -> list[list[tuple[str, str]]]:
    """The comma-separated commands of an ALTER, as (upper, original) word lists."""
    commands: list[list[tuple[str, str]]] = [[]]
    for word, text, depth in tokens.items[tokens.pos :]:
        if word == "," and depth == 0:
            commands.append([])
        else:
            commands[-1].append((word, text))
    return [c for c in commands if c]


def _alter_command(
    command: list[tuple[str, str]], database: str | None, table: str
) -> StatementKind:
    words = [w for w, _ in command]
    padded = [*words, "", ""]
    pair = padded[0], padded[1]
    label = " ".join(words[:2])
    where = _qualified(database, table)
    if pair in _RERUN_ALTER:
        return StatementKind(label, Safety.RERUN)
    if pair[0] in {"UPDATE", "DELETE"}:
        return _ask(
            f"{pair[0]} (a mutation)",
            f"system.mutations for {where} (is_done, latest_fail_reason) and the data",
            partial=True,
        )
    offset = 2
    if words[2:5] == ["IF", "NOT", "EXISTS"]:
        offset = 5
    elif words[2:4] == ["IF", "EXISTS"]:
        offset = 4
    if offset > 2 and pair in _GUARDABLE_ALTER:
        return StatementKind(label, Safety.RERUN)
    effects = _alter_effects(pair, command[offset:], database, table)
    if effects:
        return StatementKind(label, Safety.CHECK, effects)
    return _ask(label, f"whether {where} shows the change")


def _alter_effects(
    pair: tuple[str, str], rest: list[tuple[str, str]], database: str | None, table: str
) -> tuple[Effect, ...]:
    """What ADD/DROP COLUMN/INDEX/PROJECTION and RENAME COLUMN establish; () for others."""
    name = rest[0][1] if rest else ""
    if pair[0] in {"ADD", "DROP"} and pair[1] in _ALTER_OBJECTS and name:
        return (Effect(_ALTER_OBJECTS[pair[1]], database, table, name, present=pair[0] == "ADD"),)
    if pair == ("RENAME", "COLUMN") and len(rest) > 2 and rest[1][0] == "TO":
        return (
            Effect("column", database, table, rest[2][1]),
            Effect("column", database, table, name, present=False),
        )
    return ()


def _qualified(database: str | None, name: str) -> str:
    return f"{database}.{name}" if database else name


_READERS: dict[str, Callable[[_Tokens], StatementKind]] = {
    "CREATE": _create,
    "DROP": _drop,
    "ALTER": _alter,
    "RENAME": _rename,
    "INSERT": _insert,
    "UPDATE": _mutation,
    "DELETE": _mutation,
}
