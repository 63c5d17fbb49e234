"""Run windows: the half-open time interval [start, end) one run is responsible for.

A scheduled run covers the interval between the two latest fire times of its schedule,
so two runs never overlap and re-running a window means the same data.  Every window's
bounds lie in the range the warehouse stores (ClickHouse ``DateTime64``: 1900 to 2299), so
a bad bound is refused here, not by SQL halfway through a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from runner.errors import ConfigError, UsageError
from runner.instants import EARLIEST, LATEST, check_storable, parse_instant

if TYPE_CHECKING:
    from runner.pipeline.spec import PipelineSpec

# EARLIEST, LATEST, check_storable and parse_instant (runner.instants) are re-exported: the
# window bounds' limits and their reading belong with windows for the API reference.
__all__ = [
    "EARLIEST",
    "EPOCH",
    "LATEST",
    "Window",
    "check_storable",
    "fire_times",
    "is_fire_time",
    "parse_instant",
    "previous_fires",
    "resolve_window",
    "schedule_window",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DST_MARGIN = timedelta(hours=3)  # more than any clock change


@dataclass(frozen=True, order=True)
class Window:
    """A half-open interval of time-zone-aware instants, always stored in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ConfigError("window bounds must be time-zone aware")
        # Compare in UTC: Python compares two times of one zone by wall clock, so the
        # repeated hour of a DST change would look like an empty window.
        object.__setattr__(self, "start", check_storable(self.start))
        object.__setattr__(self, "end", check_storable(self.end))
        if self.start >= self.end:
            raise UsageError(
                f"start {self.start.isoformat()} is not before end {self.end.isoformat()}"
            )

    def __str__(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"

    def contains(self, instant: datetime) -> bool:
        """Whether ``instant`` falls inside [start, end)."""
        return self.start <= instant < self.end


def fire_times(
    schedule: str,
    zone: str | ZoneInfo,
    first: datetime,
    last: datetime,
    *,
    limit: int | None = None,
) -> list[datetime]:
    """Every instant in [first, last] at which the schedule fires, in UTC, in order.

    The schedule is matched against the zone's wall clock, walked as naive local times
    (croniter's own time-zone handling depends on where the walk starts inside a repeated
    hour).  A repeated wall-clock time (clocks going back) fires at both instants; a time
    the clocks skip fires once, at the instant its pre-change offset gives (after the
    jump).  Backfill planning and scheduled windows both use this, so they agree.
    With ``limit``, the walk stops once more than ``limit`` fires were found.
    """
    from croniter import croniter

    tz = zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone)
    walk = croniter(schedule, first.astimezone(tz).replace(tzinfo=None) - _DST_MARGIN)
    horizon = last.astimezone(tz).replace(tzinfo=None) + _DST_MARGIN
    found: set[datetime] = set()
    while (local := walk.get_next(datetime)) <= horizon:
        found.update(t for t in _instants(local, tz) if first <= t <= last)
        if limit is not None and len(found) > limit:
            break
    return sorted(found)


def _instants(local: datetime, tz: ZoneInfo) -> list[datetime]:
    """The UTC instants showing the naive wall-clock time ``local`` in ``tz``."""
    early = local.replace(tzinfo=tz, fold=0).astimezone(UTC)
    late = local.replace(tzinfo=tz, fold=1).astimezone(UTC)
    return [early, late] if early < late else [early]


def previous_fires(schedule: str, zone: str | ZoneInfo, at: datetime, count: int) -> list[datetime]:
    """The ``count`` latest fire times at or before ``at``, in UTC, oldest first.

    Walks back on the zone's wall clock only to find a lower bound, then forward with
    :func:`fire_times`, so repeated and skipped hours count as they do everywhere else.
    """
    from croniter import croniter

    tz = zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone)
    local_at = at.astimezone(tz).replace(tzinfo=None)
    # Any wall-clock time a margin before ``at`` is an instant before it, whatever the
    # zone's clock changes: the ``count`` latest such fires bound the walk from below.
    back = croniter(schedule, local_at - _DST_MARGIN)
    oldest = local_at
    for _ in range(count):
        oldest = back.get_prev(datetime)
    lowest = oldest.replace(tzinfo=tz).astimezone(UTC) - _DST_MARGIN
    fires = fire_times(schedule, tz, lowest, at)
    if len(fires) < count:  # pragma: no cover - the walk back found that many
        raise ConfigError(f"schedule {schedule!r} has no {count} fire times before {at}")
    return fires[-count:]


def is_fire_time(schedule: str, zone: str | ZoneInfo, instant: datetime) -> bool:
    """Whether the schedule fires at exactly ``instant``."""
    return bool(fire_times(schedule, zone, instant, instant))


def schedule_window(schedule: str, spec_zone: str, now: datetime) -> Window:
    """The interval between the two latest fire times at or before ``now``."""
    before, last = previous_fires(schedule, spec_zone, now, 2)
    return Window(before, last)


def resolve_window(
    spec: PipelineSpec,
    *,
    explicit: Window | None = None,
    now: datetime | None = None,
    watermark: datetime | None = None,
) -> Window | None:
    """The window of a run: the explicit one, else the schedule's, else up to now.

    An incremental pipeline starts at its watermark (the end of its last successful
    window) and runs up to the schedule's latest fire time (or now); ``None`` means the
    watermark is already there and there is nothing to do.  A pipeline without a schedule
    (manual only) covers everything up to now by default.
    """
    if explicit is not None:
        return explicit
    moment = now or datetime.now(UTC)
    scheduled = schedule_window(spec.schedule, spec.timezone, moment) if spec.schedule else None
    if spec.incremental and watermark is not None:
        until = scheduled.end if scheduled else moment
        return Window(watermark, until) if watermark < until else None
    if scheduled:
        return scheduled
    return Window(EPOCH, moment)
