"""Which names may be ClickHouse identifiers (databases, tables, columns, clusters).

Identifiers cannot be bound as query parameters, so every one is checked against a strict
pattern before it reaches SQL.  This sits in the base layer because settings check their
database names when they are read, before anything talks to a warehouse; quoting and the
rest of SQL text stay in runner.warehouse.sql.
"""

from __future__ import annotations

import re

from runner.errors import ConfigError

__all__ = ["check_identifier"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,205}$")


def check_identifier(name: str, *, what: str = "identifier") -> str:
    """Return ``name`` if it is a plain identifier, else raise a clear ConfigError."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ConfigError(
            f"invalid {what} {name!r}: use letters, digits and '_' (not starting with a digit)"
        )
    return name
