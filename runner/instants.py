"""Instants the warehouse can store, and reading them from ISO 8601 text.

Every bound the framework stores (run history, window parameters) is a ClickHouse
``DateTime64``, which holds 1900 to 2299; a value outside is refused here, naming it,
instead of by SQL halfway through a run.  Part of the base layer: settings read
``RUNNER_SCHEDULED_TIME`` with it, and windows (runner.pipeline.windows) build on it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from runner.errors import UsageError

__all__ = ["EARLIEST", "LATEST", "check_storable", "parse_instant"]

#: The instants ClickHouse's DateTime64 stores (run history, window parameters).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2299, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)


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
