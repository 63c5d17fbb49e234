"""Planning backfills: split a date range into the windows a pipeline runs.

By default windows follow the pipeline's schedule (the same windows its CronJob would
have run), so a backfilled window and a scheduled one are the same window and share a
lock and the loaders' deduplication tokens.  A range whose edges fall inside scheduled
windows is widened to those whole windows, never cut short: the plan says so.

An explicit step splits the range instead, starting at its start; the last window ends at
the range's end.  Minutes and hours are exact durations; days, weeks, months and years
follow the calendar of the pipeline's time zone (a day across a DST change is 23 or 25
hours).  Month steps count from the range's start and keep its day of the month, clamped
to the month's last day: from Jan 31 the windows start on Feb 28 (29), Mar 31, Apr 30.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from runner.errors import UsageError
from runner.pipeline.windows import LATEST, Window, fire_times, schedule_window

if TYPE_CHECKING:
    from collections.abc import Collection

    from runner.pipeline.spec import PipelineSpec

SCHEDULE = "schedule"
#: No plan holds more windows: a minutely step over years would take minutes and gigabytes
#: to plan before anything could refuse it.
MAX_WINDOWS = 100_000
_STEP = re.compile(r"^(\d{1,6})(mo|m|h|d|w|y)$")
_STEP_HELP = (
    "use 'schedule' or a count and a unit: m (minutes), h (hours), d (days), w (weeks), "
    "mo (months), y (years), e.g. 15m, 6h, 1d, 1mo"
)
# Spans searched for the first fire at or after an instant: a minutely schedule needs the
# first, a Feb 29 one the last (eight years without a leap day around 2100).
_FIRE_SEARCH = (timedelta(days=2), timedelta(days=63), timedelta(days=400), timedelta(days=3300))


@dataclass(frozen=True)
class Step:
    """How a range is split: the schedule's own windows, or windows of a fixed size."""

    text: str
    fixed: timedelta | None = None  # minutes and hours: exact durations
    days: int = 0  # days and weeks: the zone's calendar days
    months: int = 0  # months and years: the zone's calendar months

    @property
    def is_schedule(self) -> bool:
        """Whether windows follow the pipeline's schedule."""
        return self.text == SCHEDULE

    def __str__(self) -> str:
        return self.text


def parse_step(text: str) -> Step:
    """``schedule`` or a positive count and a unit: ``15m``, ``6h``, ``1d``, ``1w``, ``1mo``.

    Units are lower case: ``1M`` is refused rather than guessed (minutes or months?).
    """
    value = text.strip()
    if value == SCHEDULE:
        return Step(SCHEDULE)
    match = _STEP.fullmatch(value)
    if not match or int(match.group(1)) == 0:
        hint = ""
        if re.fullmatch(r"\d+M", value):
            hint = " ('M' is ambiguous: write 'mo' for months or 'm' for minutes)"
        raise UsageError(f"{text!r} is not a step: {_STEP_HELP}{hint}")
    count, unit = int(match.group(1)), match.group(2)
    if unit == "m":
        return Step(value, fixed=timedelta(minutes=count))
    if unit == "h":
        return Step(value, fixed=timedelta(hours=count))
    if unit in {"d", "w"}:
        return Step(value, days=count * (7 if unit == "w" else 1))
    return Step(value, months=count * (12 if unit == "y" else 1))


def plan_windows(spec: PipelineSpec, start: datetime, end: datetime, step: Step) -> list[Window]:
    """The windows covering [start, end), oldest first.

    With the schedule, windows run between consecutive fire times, from the last fire at
    or before ``start`` to the first at or after ``end``: the whole scheduled windows that
    overlap the range (compare the result's bounds with the range to see the widening).
    A pipeline without a schedule needs an explicit step.
    """
    if start >= end:
        raise UsageError(f"start {start.isoformat()} is not before end {end.isoformat()}")
    if step.is_schedule:
        if not spec.schedule:
            raise UsageError(
                f"pipeline {spec.name!r} has no schedule, so its windows need an explicit "
                "step (e.g. 1d)"
            )
        return _schedule_windows(spec.schedule, spec.zone, start, end)
    if _estimate(step, start, end) > MAX_WINDOWS:
        raise _too_many(step, start, end)
    return _stepped_windows(step, spec.zone, start, end)


def _too_many(step: Step, start: datetime, end: datetime) -> UsageError:
    windows = "scheduled windows" if step.is_schedule else f"windows of {step}"
    return UsageError(
        f"{start.isoformat()} .. {end.isoformat()} holds more than {MAX_WINDOWS:,} {windows}: "
        "use a coarser step or a shorter range"
    )


def _estimate(step: Step, start: datetime, end: datetime) -> float:
    """About how many windows a stepped plan has (within a day's DST slack)."""
    if step.fixed is not None:
        return (end - start) / step.fixed
    if step.days:
        return (end - start) / timedelta(days=step.days)
    months = (end.year - start.year) * 12 + end.month - start.month
    return months / step.months


def _schedule_windows(
    schedule: str, zone: ZoneInfo, start: datetime, end: datetime
) -> list[Window]:
    first = schedule_window(schedule, zone.key, start).end  # the last fire at or before start
    last = first_fire_at_or_after(schedule, zone, end)
    fires = fire_times(schedule, zone, first, last, limit=MAX_WINDOWS + 1)
    if len(fires) > MAX_WINDOWS + 1:
        raise _too_many(Step(SCHEDULE), start, end)
    return [Window(a, b) for a, b in pairwise(fires)]


def first_fire_at_or_after(schedule: str, zone: ZoneInfo, instant: datetime) -> datetime:
    """The schedule's first fire time at or after ``instant`` (in UTC)."""
    for span in _FIRE_SEARCH:
        fires = fire_times(schedule, zone, instant, instant + span)
        if fires:
            return fires[0]
    raise UsageError(  # pragma: no cover - a declared schedule fires at least every 8 years
        f"schedule {schedule!r} does not fire within {_FIRE_SEARCH[-1].days} days of "
        f"{instant.isoformat()}"
    )


def _stepped_windows(step: Step, zone: ZoneInfo, start: datetime, end: datetime) -> list[Window]:
    windows: list[Window] = []
    local_start = start.astimezone(zone).replace(tzinfo=None)
    current = start
    count = 0
    while current < end:
        count += 1
        following = _boundary(step, zone, start, local_start, count)
        if following <= current:  # pragma: no cover - a calendar day outlasts any clock change
            following = current + timedelta(days=step.days or 1)
        windows.append(Window(current, min(following, end)))
        current = following
    return windows


def _boundary(
    step: Step, zone: ZoneInfo, start: datetime, local_start: datetime, k: int
) -> datetime:
    """The start of window ``k``, counted from the range's start (never chained)."""
    try:
        if step.fixed is not None:  # in UTC: wall-clock arithmetic is wrong across DST
            return start.astimezone(UTC) + step.fixed * k
        if step.days:
            local = local_start + timedelta(days=step.days * k)
        else:
            months = local_start.month - 1 + step.months * k
            year, month = local_start.year + months // 12, months % 12 + 1
            day = min(local_start.day, calendar.monthrange(year, month)[1])
            local = local_start.replace(year=year, month=month, day=day)
    except (OverflowError, ValueError):  # beyond year 9999: past any storable end
        return LATEST
    return local.replace(tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class BackfillPlan:
    """A range's windows, which are done already, and which will run (in order).

    ``requested`` is the range asked for; ``covered`` the one the windows span (wider
    when the range's edges fall inside scheduled windows).  ``unfinished`` are windows
    left out because they have not ended yet: the scheduled run covers them.
    """

    requested: Window
    windows: list[Window]
    done: list[Window]
    todo: list[Window]
    unfinished: list[Window]

    @property
    def covered(self) -> Window | None:
        """From the first window's start to the last one's end."""
        spans = self.windows + self.unfinished
        return Window(spans[0].start, spans[-1].end) if spans else None

    @property
    def widened(self) -> bool:
        """Whether the windows reach beyond the requested range."""
        covered = self.covered
        return covered is not None and (
            covered.start < self.requested.start or covered.end > self.requested.end
        )

    def as_dict(self) -> dict[str, object]:
        """For ``--output json``."""
        covered = self.covered
        return {
            "requested": _pair(self.requested),
            "planned": _pair(covered) if covered else None,
            "widened": self.widened,
            "windows": len(self.windows),
            "done": len(self.done),
            "todo": [_pair(w) for w in self.todo],
            "left_out": [{"window": _pair(w), "reason": "not ended yet"} for w in self.unfinished],
        }


def _pair(window: Window) -> list[str]:
    return [window.start.isoformat(), window.end.isoformat()]


def make_plan(
    requested: Window,
    windows: list[Window],
    succeeded: Collection[tuple[datetime, datetime]],
    *,
    only_missing: bool = True,
    reverse: bool = False,
    now: datetime | None = None,
) -> BackfillPlan:
    """Split windows into done and to-do; ``only_missing`` skips windows that succeeded.

    A window that ends after ``now`` is left out (listed as unfinished): its data is not
    complete yet, and a backfill that recorded it as succeeded would later skip it.
    """
    moment = now or datetime.now(UTC)
    finished = [w for w in windows if w.end <= moment]
    unfinished = [w for w in windows if w.end > moment]
    done = [w for w in finished if (w.start, w.end) in succeeded]
    todo = [w for w in finished if not only_missing or (w.start, w.end) not in succeeded]
    if reverse:
        todo.reverse()
    return BackfillPlan(requested, finished, done, todo, unfinished)
