"""Which files of the migrations directory are migrations, and which are mistakes.

A migration is ``NNNN_description.sql``: four or more digits, ``_``, lower-case words
joined by ``_``, and the suffix ``.sql`` in lower case.  A file that looks like a
migration but breaks the rule (``0005_x.SQL``, ``5_x.sql``, ``0005-x.sql``,
``0005_x.sql.txt``, ``0005_x``) is an error naming the file: skipped silently, it would
leave the schema behind without anyone noticing.  Hidden files, editor and merge
leftovers (``~``, ``#…#``, ``.bak``, ``.orig``, ``.rej``, ``.swp``, ``.tmp``) and documentation
(``.md``, ``.txt``, ``.rst`` without ``.sql`` in the name) are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FILE_NAME = re.compile(r"^(\d{4,})_([a-z0-9][a-z0-9_]*)\.sql$")
LEFTOVER_SUFFIXES = (".bak", ".orig", ".rej", ".swp", ".tmp")
DOC_SUFFIXES = (".md", ".txt", ".rst")
RULE = "migration files are named NNNN_description.sql (4+ digits, '_', lower-case words)"


@dataclass(frozen=True)
class MigrationName:
    """The version and description a valid file name carries."""

    version: int
    name: str


def parse_name(file_name: str) -> MigrationName | None:
    """The migration a file name stands for; None for a file to ignore.

    Raises ValueError with the reason for a name that looks like a migration but is not
    one.
    """
    match = FILE_NAME.fullmatch(file_name)
    if match:
        return MigrationName(int(match.group(1)), match.group(2))
    folded = file_name.lower()
    if file_name.startswith((".", "#")) or folded.endswith(("~", "#", *LEFTOVER_SUFFIXES)):
        return None
    if ".sql" in folded or (file_name[:1].isdigit() and not folded.endswith(DOC_SUFFIXES)):
        raise ValueError(_reason(file_name))
    return None


def _reason(file_name: str) -> str:
    """The rule, and why a migration-like name breaks it, as precisely as it can tell."""
    return f"{RULE}: {_broken_part(file_name)}"


def _broken_part(file_name: str) -> str:
    stem, dot, suffix = file_name.partition(".")
    digits = stem[: len(stem) - len(stem.lstrip("0123456789"))]
    checks = (
        (not dot, "the suffix '.sql' is missing"),
        (suffix.lower() == "sql" and suffix != "sql", "the suffix must be '.sql' in lower case"),
        (
            suffix.lower() != "sql",
            f"'.{suffix}' is not a migration suffix (to keep a file aside, end it in .bak)",
        ),
        (not digits, "no version number in front"),
        (len(digits) < 4, f"the version needs at least 4 digits ({digits.zfill(4)})"),
        (stem[len(digits) : len(digits) + 1] != "_", "the version must be followed by '_'"),
    )
    return next(
        (message for broken, message in checks if broken),
        "the description must be lower-case words joined by '_'",
    )
