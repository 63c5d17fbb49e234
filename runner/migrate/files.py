"""Migration files: ``NNNN_description.sql``, split into statements, placeholders filled.

Placeholders ``{{database}}`` and ``{{on_cluster}}`` let one set of files serve every
environment; ClickHouse's own ``{name:Type}`` parameters are left alone.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from runner.errors import ConfigError

FILE_NAME = re.compile(r"^(\d{4,})_([a-z0-9][a-z0-9_]*)\.sql$")
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Statement:
    """One SQL statement and the line of its file it starts on."""

    sql: str
    line: int

    @property
    def checksum(self) -> str:
        """sha256 of the statement with white space folded (what resuming compares)."""
        return hashlib.sha256(" ".join(self.sql.split()).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class MigrationFile:
    """One parsed migration file."""

    version: int
    name: str
    path: Path
    text: str

    @property
    def checksum(self) -> str:
        """sha256 of the text with line endings and trailing blanks normalised."""
        normalised = "\n".join(line.rstrip() for line in self.text.strip().splitlines())
        return hashlib.sha256(normalised.encode("utf-8")).hexdigest()

    @property
    def raw_statements(self) -> list[Statement]:
        """The file's statements as written (placeholders unfilled)."""
        return split_statements(self.text)

    def statements(self, values: dict[str, str]) -> list[Statement]:
        """The file's statements with placeholders replaced by ``values``."""
        out: list[Statement] = []
        for statement in split_statements(self.text):

            def fill(match: re.Match[str], stmt: Statement = statement) -> str:
                key = match.group(1)
                if key not in values:
                    raise ConfigError(
                        f"{self.path}:{stmt.line}: unknown placeholder {{{{{key}}}}}; "
                        f"known: {', '.join(sorted(values))}"
                    )
                return values[key]

            out.append(Statement(PLACEHOLDER.sub(fill, statement.sql), statement.line))
        return out


def discover(directory: Path) -> list[MigrationFile]:
    """Every migration file of ``directory`` in version order, with clear errors."""
    if not directory.is_dir():
        return []
    found: dict[int, MigrationFile] = {}
    for path in sorted(directory.glob("*.sql")):
        match = FILE_NAME.fullmatch(path.name)
        if not match:
            raise ConfigError(
                f"{path}: migration files are named NNNN_description.sql "
                "(digits, '_', lower-case words)"
            )
        version = int(match.group(1))
        if version in found:
            raise ConfigError(
                f"{path}: version {version} is also used by {found[version].path.name}"
            )
        found[version] = MigrationFile(version, match.group(2), path, path.read_text("utf-8"))
    return [found[v] for v in sorted(found)]


def head_version(directory: Path) -> int:
    """The newest migration version in ``directory`` (0 when there is none).

    This is the schema version the code expects; a database behind it is not ready.
    """
    files = discover(directory)
    return files[-1].version if files else 0


def split_statements(text: str) -> list[Statement]:
    """Split SQL text at semicolons outside quotes and comments."""
    statements: list[Statement] = []
    current: list[str] = []
    start_line = line = 1
    i, n = 0, len(text)
    quote: str | None = None
    started = False
    while i < n:
        ch = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if quote:
            current.append(ch)
            if ch == "\\" and nxt:
                current.append(nxt)
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"`":
            if not started:
                start_line, started = line, True
            quote = ch
            current.append(ch)
        elif ch == "-" and nxt == "-":
            end = text.find("\n", i)
            i = n if end == -1 else end
            continue
        elif ch == "/" and nxt == "*":
            end = text.find("*/", i + 2)
            skipped = text[i : n if end == -1 else end + 2]
            line += skipped.count("\n")
            i = n if end == -1 else end + 2
            continue
        elif ch == ";":
            _flush(statements, current, start_line)
            current, started = [], False
        else:
            if not started and not ch.isspace():
                start_line, started = line, True
            current.append(ch)
        if ch == "\n":
            line += 1
        i += 1
    _flush(statements, current, start_line)
    return statements


def _flush(statements: list[Statement], current: list[str], line: int) -> None:
    sql = "".join(current).strip()
    if sql:
        statements.append(Statement(sql, line))
