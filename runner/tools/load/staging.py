"""Staging tables of replace-window loads: one name per window, an owner, orphan clean-up.

A replace-window run stages its rows in ``<table>__staging_<12 hex>``, the hex being a
hash of (pipeline, node, table, window start).  The run holds the lock of that window
(``run:<pipeline>:<window start>``), so a staging table of its own name that already
exists was left by an earlier run of the same window that died: it is dropped at once.

Every staging table records its owner in its COMMENT (pipeline, node, run id, window).
Backfill windows of one pipeline run at the same time, each holding only its own
window's lock, so another window's staging table may belong to a live run: it is
dropped only when the run history says its run is over (finished, or its heartbeat
older than ``RUNNER_STALE_AFTER_SECONDS``).  A staging table without a readable owner
(made by an older version) or whose run the history does not know is dropped after a
day, as before.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from runner.errors import RunnerError

if TYPE_CHECKING:
    from runner.pipeline.context import RunContext

STAGING_MARK = "__staging_"
HASH_LENGTH = 12
UNOWNED_AFTER = "INTERVAL 1 DAY"
_KIND = "pipeline-runner staging"


@dataclass(frozen=True)
class Owner:
    """The run a staging table belongs to, as kept in the table's COMMENT."""

    pipeline: str
    node: str
    run_id: str
    window_start: str
    window_end: str

    @classmethod
    def of(cls, ctx: RunContext) -> Owner:
        """The owner that is this run."""
        return cls(
            ctx.pipeline,
            ctx.node,
            ctx.run_id,
            ctx.window.start.isoformat(),
            ctx.window.end.isoformat(),
        )

    def comment(self) -> str:
        """JSON text for the table's COMMENT."""
        return json.dumps({"kind": _KIND, **asdict(self)}, sort_keys=True)

    @classmethod
    def parse(cls, comment: str) -> Owner | None:
        """The owner in a COMMENT, or None when it holds none."""
        try:
            data = json.loads(comment)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.pop("kind", None) != _KIND:
            return None
        try:
            return cls(**{k: str(v) for k, v in data.items()})
        except TypeError:
            return None


def staging_name(table: str, ctx: RunContext) -> str:
    """The staging table of ``table`` for this pipeline node and window start (unqualified)."""
    key = f"{ctx.pipeline}/{ctx.node}/{table}/{ctx.window.start.isoformat()}"
    return f"{table}{STAGING_MARK}{hashlib.sha256(key.encode()).hexdigest()[:HASH_LENGTH]}"


def sql_string(text: str) -> str:
    """A quoted SQL string literal (for DDL, which takes no bound parameters)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def owner_of(ctx: RunContext, database: str, name: str) -> Owner | None:
    """The owner a staging table's COMMENT names (None: no table, or no owner)."""
    rows = ctx.warehouse.query_rows(
        "SELECT comment FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": database, "t": name},
    )
    return Owner.parse(str(rows[0][0])) if rows else None


def drop_orphans(ctx: RunContext, database: str, table: str, own: str) -> None:
    """Drop the staging tables of ``table`` that no live run uses (see the module doc)."""
    wh = ctx.warehouse
    pattern = re.compile(re.escape(table + STAGING_MARK) + f"[0-9a-f]{{{HASH_LENGTH}}}")
    like = (table + STAGING_MARK).replace("_", "\\_") + "%"
    rows = wh.query_rows(
        "SELECT name, comment, metadata_modification_time < now() - "  # nosec B608
        f"{UNOWNED_AFTER} FROM system.tables WHERE database = {{db:String}} "
        "AND name LIKE {like:String}",
        {"db": database, "like": like},
    )
    for found, comment, old in rows:
        name = str(found)
        if not pattern.fullmatch(name):
            continue
        reason = _why_orphaned(ctx, name == own, Owner.parse(str(comment)), bool(old))
        if reason is None:
            continue
        wh.command(f"DROP TABLE IF EXISTS {wh.table(f'{database}.{name}')} SYNC")
        ctx.log.warning("stale staging table dropped", table=f"{database}.{name}", reason=reason)


def _why_orphaned(ctx: RunContext, own: bool, owner: Owner | None, old: bool) -> str | None:
    """Why a staging table may be dropped now, or None to keep it."""
    if own:
        return "left by an earlier run of this window (this run holds the window's lock)"
    if owner is not None:
        over = _run_over(ctx, owner)
        if over is not None:
            return over
    if old:
        return "older than a day, and no live run is known to own it"
    return None


def _run_over(ctx: RunContext, owner: Owner) -> str | None:
    """How the owner's run ended, or None while it may be running (or is unknown)."""
    from runner.state.runs import RunHistory

    try:
        record = RunHistory(ctx.warehouse, ctx.settings.state_database).get(
            owner.pipeline, owner.run_id
        )
    except RunnerError:  # no history to ask: keep the table
        return None
    if record is None:
        return None
    if record.status != "running":
        return f"its run {owner.run_id} ({owner.window_start}) {record.status}"
    stale = timedelta(seconds=ctx.settings.stale_after_seconds)
    if record.heartbeat_at < datetime.now(UTC) - stale:
        return (
            f"its run {owner.run_id} ({owner.window_start}) stopped sending heartbeats at "
            f"{record.heartbeat_at.isoformat()}"
        )
    return None
