"""Identifier checks and quoting.

Values never go into SQL text: they are bound as query parameters.  Identifiers cannot be
bound, so they are checked against a strict pattern and back-quoted.  The one exception is
the embedded engine's ``INSERT ... FROM INFILE``, whose file name and ``SETTINGS`` cannot be
bound either: :func:`string_literal` escapes them and :func:`setting_name` checks names.
"""

from __future__ import annotations

import re
from typing import Any

from runner.errors import ConfigError

# re-exported (the alias marks it so for mypy): callers check and quote from one module
from runner.identifiers import check_identifier as check_identifier  # noqa: PLC0414


def quote_identifier(name: str, *, what: str = "identifier") -> str:
    """Check and back-quote one identifier."""
    return f"`{check_identifier(name, what=what)}`"


def qualified_table(table: str, default_database: str) -> str:
    """Quote ``table`` or ``database.table``, filling in the default database."""
    database, _, name = table.rpartition(".")
    return (
        f"{quote_identifier(database or default_database, what='database')}."
        f"{quote_identifier(name, what='table')}"
    )


def on_cluster(cluster: str | None) -> str:
    """`` ON CLUSTER `name` `` for DDL on a cluster, or nothing on a single node."""
    return f" ON CLUSTER {quote_identifier(cluster, what='cluster')}" if cluster else ""


def replacing_engine(state_database: str, table: str, cluster: str | None, version: str) -> str:
    """ReplacingMergeTree(version), replicated under a fixed Keeper path on a cluster."""
    if not cluster:
        return f"ReplacingMergeTree({version})"
    return (
        f"ReplicatedReplacingMergeTree('/clickhouse/pipeline_runner/{state_database}/{table}',"
        f" '{{replica}}', {version})"
    )


_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quoted_column(name: str) -> str:
    """Back-quote any column name (Arrow names are free text), escaping quotes."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def setting_name(name: str) -> str:
    """``name`` if it can be a ClickHouse setting's name in SQL text, else a ConfigError."""
    if not _SETTING_NAME.fullmatch(name):
        raise ConfigError(f"invalid ClickHouse setting name {name!r}")
    return name


def string_literal(value: Any) -> str:
    """A quoted SQL string (settings take it too: ClickHouse converts it to their type)."""
    text = str(int(value)) if isinstance(value, bool) else str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
