"""Planning backfills: split a date range into the windows a pipeline runs.

By default windows follow the pipeline's schedule (the same windows its CronJob would
have run), so a backfilled window and a scheduled one are the same window and share a
lock and the loaders' deduplication tokens.  An explicit step (``1d``, ``6h``, ``15m``,
``1w``) splits the range instead; day and week steps follow the calendar of the
pipeline's time zone, so a day across a DST change is 23 or 25 hours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from runner.errors import ConfigError
from runner.pipeline.windows import Window, fire_times

if TYPE_CHECKING:
    from collections.abc import Collection

    from runner.pipeline.spec import PipelineSpec

SCHEDULE = "schedule"
_STEP = re.compile(r"^(\d+)(m|h|d|w)$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_step(text: str) -> str | timedelta:
    """``schedule`` or a positive duration like ``1d``, ``6h``, ``15m``, ``1w``."""
    if text == SCHEDULE:
        return SCHEDULE
    match = _STEP.fullmatch(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ConfigError(
            f"--step {text!r}: use 'schedule' or a duration such as 15m, 6h, 1d or 1w"
        )
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def plan_windows(
    spec: PipelineSpec, start: datetime, end: datetime, step: str | timedelta
) -> list[Window]:
    """The windows covering [start, end), oldest first.

    With the schedule, windows run between consecutive fire times; only whole intervals
    inside the range are planned (a partial interval at either edge is not).  A pipeline
    without a schedule needs an explicit step.
    """
    if start >= end:
        raise ConfigError(f"--start {start.isoformat()} is not before --end {end.isoformat()}")
    if step == SCHEDULE:
        if not spec.schedule:
            raise ConfigError(f"pipeline {spec.name!r} has no schedule: give --step (e.g. 1d)")
        return _schedule_windows(spec.schedule, spec.zone, start, end)
    assert isinstance(step, timedelta)  # noqa: S101 - parse_step returns one or the other
    return _stepped_windows(step, spec.zone, start, end)


def _schedule_windows(
    schedule: str, zone: ZoneInfo, start: datetime, end: datetime
) -> list[Window]:
    fires = fire_times(schedule, zone, start, end)
    return [Window(a, b) for a, b in pairwise(fires)]


def _stepped_windows(
    step: timedelta, zone: ZoneInfo, start: datetime, end: datetime
) -> list[Window]:
    calendar = step.days > 0 and step.seconds == 0  # whole days: local calendar arithmetic
    windows: list[Window] = []
    current = start.astimezone(zone)
    while current < end:
        if calendar:
            following = (current.replace(tzinfo=None) + step).replace(tzinfo=zone)
        else:  # in UTC: aware arithmetic in the zone is wall-clock, wrong across DST changes
            following = (current.astimezone(UTC) + step).astimezone(zone)
        windows.append(Window(current, min(following, end.astimezone(zone))))
        current = following
    return windows


@dataclass(frozen=True)
class BackfillPlan:
    """All windows of a range, which are done already, and which will run (in order)."""

    windows: list[Window]
    done: list[Window]
    todo: list[Window]

    def as_dict(self) -> dict[str, object]:
        """For ``--output json``."""
        return {
            "windows": len(self.windows),
            "done": len(self.done),
            "todo": [[w.start.isoformat(), w.end.isoformat()] for w in self.todo],
        }


def make_plan(
    windows: list[Window],
    succeeded: Collection[tuple[datetime, datetime]],
    *,
    only_missing: bool = True,
    reverse: bool = False,
) -> BackfillPlan:
    """Split windows into done and to-do; ``only_missing`` skips windows that succeeded."""
    done = [w for w in windows if (w.start, w.end) in succeeded]
    todo = [w for w in windows if not only_missing or (w.start, w.end) not in succeeded]
    if reverse:
        todo.reverse()
    return BackfillPlan(windows, done, todo)
