"""Staging tables of replace-window loads: named per run, owned, cleaned up when orphaned.

A replace-window run stages its rows in ``<table>__staging_<12 hex>``, the hex being a
hash of (pipeline, node, table, window start, run id), and records its owner in the
table's COMMENT (pipeline, node, run id, window).  At its start, after taking its locks,
a run drops the orphans among this table's staging tables:

* those of its own pipeline node and window start but another run: the run holds that
  window's lock (``run:<pipeline>:<window start>``), so their run is dead;
* those of other windows whose run is over: finished according to the run history, or
  proven dead by :func:`runner.state.liveness.run_liveness` (with file locks its free
  liveness lock proves a SIGKILLed run dead at once; otherwise a heartbeat older than
  ``RUNNER_STALE_AFTER_SECONDS``).  Backfill windows of one pipeline run at the same
  time, each holding only its own window's lock, so a live window's staging table is
  never touched;
* those without a readable owner (made by an older version) or whose run the history
  does not know, once older than a day.

Names are unique per run, so a table dropped as another window's orphan can never be
the new staging table that window's next run is creating at the same moment.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
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
    """The staging table of ``table`` for the run of ``ctx`` (unqualified)."""
    key = f"{ctx.pipeline}/{ctx.node}/{table}/{ctx.window.start.isoformat()}/{ctx.run_id}"
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
        if name == own:
            continue
        reason = _why_orphaned(ctx, Owner.parse(str(comment)), bool(old))
        if reason is None:
            continue
        wh.command(f"DROP TABLE IF EXISTS {wh.table(f'{database}.{name}')} SYNC")
        ctx.log.warning("stale staging table dropped", table=f"{database}.{name}", reason=reason)


def _why_orphaned(ctx: RunContext, owner: Owner | None, old: bool) -> str | None:
    """Why a staging table may be dropped now, or None to keep it."""
    me = Owner.of(ctx)
    if owner is not None and (owner.pipeline, owner.node, owner.window_start) == (
        me.pipeline,
        me.node,
        me.window_start,
    ):
        return (
            f"left by run {owner.run_id} of this window, which is over: this run holds the "
            "window's lock"
        )
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
    from runner.state.liveness import run_liveness

    verdict = run_liveness(ctx.settings, record)
    if verdict.alive:
        return None
    return f"its run {owner.run_id} ({owner.window_start}) is dead: {verdict.reason}"
