"""Migration files: ``NNNN_description.sql``, split into statements, placeholders filled.

Placeholders ``{{database}}``, ``{{on_cluster}}`` and ``{{cluster}}`` let one set of files
serve every environment.  They are filled in code only: inside a string literal, a quoted
identifier or a comment ``{{database}}`` is text and stays as written.  ClickHouse's own
``{name:Type}`` parameters are left alone.  The naming rule lives in
:mod:`runner.migrate.naming`, the SQL reading in :mod:`runner.migrate.sqltext`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.errors import ConfigError
from runner.migrate.naming import parse_name
from runner.warehouse.sqltext import Statement, split_statements, substitute_code

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

__all__ = [
    "MigrationFile",
    "Statement",
    "discover",
    "head_version",
    "split_statements",
]

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


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
        """The file's statements with placeholders in code replaced by ``values``."""
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

            def fill_code(code: str, fill: Callable[[re.Match[str]], str] = fill) -> str:
                return PLACEHOLDER.sub(fill, code)

            out.append(Statement(substitute_code(statement.sql, fill_code), statement.line))
        return out


def discover(directory: Path) -> list[MigrationFile]:
    """Every migration file of ``directory`` in version order, with clear errors.

    A name that looks like a migration but breaks the naming rule is an error, never
    skipped (see :mod:`runner.migrate.naming`).
    """
    if not directory.is_dir():
        return []
    found: dict[int, MigrationFile] = {}
    for path in sorted(directory.iterdir()):
        try:
            parsed = parse_name(path.name)
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if parsed is None:
            continue
        if not path.is_file():
            raise ConfigError(f"{path}: named like a migration but is not a file")
        if parsed.version in found:
            raise ConfigError(
                f"{path}: version {parsed.version} is also used by "
                f"{found[parsed.version].path.name}"
            )
        found[parsed.version] = MigrationFile(
            parsed.version, parsed.name, path, path.read_text("utf-8")
        )
    return [found[v] for v in sorted(found)]


def head_version(directory: Path) -> int:
    """The newest migration version in ``directory`` (0 when there is none).

    This is the schema version the code expects; a database behind it is not ready.
    """
    files = discover(directory)
    return files[-1].version if files else 0
