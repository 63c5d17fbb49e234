"""Run windows: the half-open time interval [start, end) one run is responsible for.

A scheduled run covers the interval between the two latest fire times of its schedule,
so two runs never overlap and re-running a window means the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from runner.errors import ConfigError

if TYPE_CHECKING:
    from runner.pipeline.spec import PipelineSpec

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
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "end", self.end.astimezone(UTC))
        if self.start >= self.end:
            raise ConfigError(
                f"window start {self.start.isoformat()} is not before end {self.end.isoformat()}"
            )

    def __str__(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"

    def contains(self, instant: datetime) -> bool:
        """Whether ``instant`` falls inside [start, end)."""
        return self.start <= instant < self.end


def parse_instant(text: str, *, option: str) -> datetime:
    """Parse an ISO 8601 date or date-time; a value without offset is taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{option}: {text!r} is not an ISO 8601 date or date-time (e.g. 2026-01-31T00:00Z)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def schedule_window(schedule: str, spec_zone: str, now: datetime) -> Window:
    """The interval between the two latest fire times at or before ``now``."""
    from zoneinfo import ZoneInfo

    from croniter import croniter

    # croniter's get_prev can land in the future inside a repeated DST hour, so step back
    # about two fires, then walk forward as backfill planning does, comparing in UTC: a
    # scheduled window is then always the backfill planner's window for the same end.
    back = croniter(schedule, now.astimezone(ZoneInfo(spec_zone)))
    back.get_prev(datetime)
    fires = croniter(schedule, back.get_prev(datetime) - _DST_MARGIN)
    start = end = None
    while (fire := fires.get_next(datetime).astimezone(UTC)) <= now:
        if end is None or fire > end:  # a repeated wall-clock time is one fire
            start, end = end, fire
    if start is None or end is None:  # pragma: no cover - two fires always precede now
        raise ConfigError(f"schedule {schedule!r} has no two fire times before {now}")
    return Window(start, end)


def resolve_window(
    spec: PipelineSpec,
    *,
    start: str | None = None,
    end: str | None = None,
    now: datetime | None = None,
    watermark: datetime | None = None,
) -> Window | None:
    """The window of a run: explicit bounds, else the schedule's, else up to now.

    An incremental pipeline starts at its watermark (the end of its last successful
    window) and runs up to the schedule's latest fire time (or now); ``None`` means the
    watermark is already there and there is nothing to do.  A pipeline without a schedule
    (manual only) covers everything up to now by default.
    """
    moment = now or datetime.now(UTC)
    if start is not None or end is not None:
        if start is None or end is None:
            raise ConfigError("--start and --end must be given together")
        return Window(parse_instant(start, option="--start"), parse_instant(end, option="--end"))
    scheduled = schedule_window(spec.schedule, spec.timezone, moment) if spec.schedule else None
    if spec.incremental and watermark is not None:
        until = scheduled.end if scheduled else moment
        return Window(watermark, until) if watermark < until else None
    if scheduled:
        return scheduled
    return Window(EPOCH, moment)
