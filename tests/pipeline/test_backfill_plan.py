from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import ConfigError
from runner.pipeline.backfill import make_plan, parse_step, plan_windows
from runner.pipeline.spec import build_spec

BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_steps_parse():
    assert parse_step("schedule") == "schedule"
    assert parse_step("1d") == timedelta(days=1)
    assert parse_step("6h") == timedelta(hours=6)
    assert parse_step("15m") == timedelta(minutes=15)
    assert parse_step("2w") == timedelta(weeks=2)
    for bad in ("0d", "1y", "daily", "-1h"):
        with pytest.raises(ConfigError, match="--step"):
            parse_step(bad)


def test_schedule_windows_are_aligned_and_whole():
    spec = build_spec(name="p", schedule="0 */6 * * *")
    windows = plan_windows(spec, utc(2026, 1, 1, 1), utc(2026, 1, 2, 13), "schedule")
    assert [w.start.hour for w in windows] == [6, 12, 18, 0, 6]
    assert windows[0].start == utc(2026, 1, 1, 6)
    assert windows[-1].end == utc(2026, 1, 2, 12)


def test_daily_windows_follow_the_local_calendar_across_dst():
    spec = build_spec(name="p", schedule="0 0 * * *", timezone="Europe/Berlin")
    start = datetime(2026, 3, 28, tzinfo=BERLIN)
    end = datetime(2026, 3, 31, tzinfo=BERLIN)
    for step in ("schedule", parse_step("1d")):
        windows = plan_windows(spec, start, end, step)
        assert [w.end - w.start for w in windows] == [
            timedelta(hours=24),
            timedelta(hours=23),
            timedelta(hours=24),
        ]


def test_monthly_schedule_across_month_ends():
    spec = build_spec(name="p", schedule="0 0 1 * *")
    windows = plan_windows(spec, utc(2026, 1, 1), utc(2026, 5, 1), "schedule")
    assert [(w.end - w.start).days for w in windows] == [31, 28, 31, 30]


def test_stepped_windows_cut_the_last_one_at_the_end():
    spec = build_spec(name="p")
    windows = plan_windows(spec, utc(2026, 1, 1), utc(2026, 1, 1, 20), parse_step("6h"))
    assert windows[-1].end == utc(2026, 1, 1, 20)
    assert len(windows) == 4


def test_planning_errors():
    with pytest.raises(ConfigError, match="has no schedule"):
        plan_windows(build_spec(name="p"), utc(2026, 1, 1), utc(2026, 1, 2), "schedule")
    with pytest.raises(ConfigError, match="is not before"):
        plan_windows(build_spec(name="p"), utc(2026, 1, 2), utc(2026, 1, 1), parse_step("1d"))


@settings(max_examples=60, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(min_value=1, max_value=24 * 40),
    st.sampled_from(["0 * * * *", "30 2 * * *", "0 0 * * 1", "*/20 * * * *"]),
    st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]),
)
def test_schedule_windows_tile_the_range_without_gaps(start, hours, cron, zone):
    spec = build_spec(name="p", schedule=cron, timezone=zone)
    end = start + timedelta(hours=hours)
    windows = plan_windows(spec, start, end, "schedule")
    for a, b in pairwise(windows):
        assert a.end == b.start
    assert all(start <= w.start and w.end <= end for w in windows)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.booleans(), min_size=1, max_size=40),
    st.booleans(),
    st.booleans(),
)
def test_only_missing_and_all(done_flags, only_missing, reverse):
    spec = build_spec(name="p", schedule="0 0 * * *")
    windows = plan_windows(
        spec, utc(2026, 1, 1), utc(2026, 1, 1) + timedelta(days=len(done_flags)), "schedule"
    )
    succeeded = {(w.start, w.end) for w, done in zip(windows, done_flags, strict=True) if done}
    plan = make_plan(windows, succeeded, only_missing=only_missing, reverse=reverse)
    assert len(plan.done) == sum(done_flags)
    expected = [w for w in windows if not only_missing or (w.start, w.end) not in succeeded]
    assert plan.todo == (expected[::-1] if reverse else expected)
