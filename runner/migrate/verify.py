"""Looking up whether a statement's effects are in place, in ClickHouse's system tables.

Used only for a statement whose run was started but never recorded as finished (the
migrator was killed, or lost its connection): if every effect is in place the statement
ran; if none is, it did not and runs again; anything in between is for the operator.
On a cluster the lookup sees the node the migrator is connected to.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runner.migrate.kinds import Effect
    from runner.warehouse.client import Warehouse

_LOOKUPS = {
    "database": "SELECT count() FROM system.databases WHERE name = {t:String}",
    "table": "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
    "column": (
        "SELECT count() FROM system.columns "
        "WHERE database = {db:String} AND table = {t:String} AND name = {n:String}"
    ),
    "index": (
        "SELECT count() FROM system.data_skipping_indices "
        "WHERE database = {db:String} AND table = {t:String} AND name = {n:String}"
    ),
    "projection": (
        "SELECT count() FROM system.projections "
        "WHERE database = {db:String} AND table = {t:String} AND name = {n:String}"
    ),
}


class Outcome(StrEnum):
    """What the lookup says about a statement of unknown outcome."""

    DONE = "done"  # every effect is in place
    NOT_DONE = "not done"  # no effect is in place
    UNCLEAR = "unclear"  # some are, some are not


@dataclass(frozen=True)
class Verdict:
    """The outcome and, for messages, what was found."""

    outcome: Outcome
    found: str


def verify(warehouse: Warehouse, effects: tuple[Effect, ...]) -> Verdict:
    """Check each effect against the system tables."""
    results = [(effect, _in_place(warehouse, effect)) for effect in effects]
    found = "; ".join(
        f"{effect.describe()} {'exists' if (ok == effect.present) else 'does not exist'}"
        for effect, ok in results
    )
    if results and all(ok for _, ok in results):
        return Verdict(Outcome.DONE, found)
    if results and not any(ok for _, ok in results):
        return Verdict(Outcome.NOT_DONE, found)
    return Verdict(Outcome.UNCLEAR, found)


def _in_place(warehouse: Warehouse, effect: Effect) -> bool:
    """Whether the object exists (for ``present``) or is gone (otherwise)."""
    rows = warehouse.query_rows(
        _LOOKUPS[effect.what],
        {"db": effect.database or warehouse.database, "t": effect.table, "n": effect.name},
    )
    exists = bool(rows[0][0])
    return exists == effect.present
