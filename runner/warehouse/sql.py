"""Identifier checks and quoting.

Values never go into SQL text: they are bound as query parameters.  Identifiers cannot be
bound, so they are checked against a strict pattern and back-quoted.
"""

from __future__ import annotations

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
