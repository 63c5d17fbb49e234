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

if TYPE_CHECKING:
    from runner.pipeline.spec import PipelineSpec

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The instants ClickHouse's DateTime64 stores (run history, window parameters).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2299, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
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


def check_storable(instant: datetime) -> datetime:
    """``instant`` in UTC, or a UsageError when the warehouse cannot store it."""
    try:
        value = instant.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01 with a positive offset
        value = None
    if value is None or not EARLIEST <= value <= LATEST:
        raise UsageError(
            f"{instant.isoformat()} is outside the range the warehouse stores "
            f"({EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} UTC, ClickHouse DateTime64)"
        )
    return value


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 date or date-time; a value without offset is taken as UTC.

    Raises a UsageError that names the value (the caller names the flag or field).
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{text!r} is not an ISO 8601 date or date-time (e.g. 2026-01-31 or "
            "2026-01-31T06:00+01:00)"
        ) from None
    return check_storable(value if value.tzinfo else value.replace(tzinfo=UTC))


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
