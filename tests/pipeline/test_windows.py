from datetime import UTC, datetime, timedelta

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import ConfigError, UsageError
from runner.pipeline.spec import build_spec
from runner.pipeline.windows import (
    EARLIEST,
    EPOCH,
    LATEST,
    Window,
    fire_times,
    is_fire_time,
    parse_instant,
    previous_fires,
    resolve_window,
    schedule_window,
)


def test_scheduled_window_is_the_latest_whole_interval():
    now = datetime(2026, 3, 10, 14, 37, tzinfo=UTC)
    window = schedule_window("0 * * * *", "UTC", now)
    assert window == Window(
        datetime(2026, 3, 10, 13, tzinfo=UTC), datetime(2026, 3, 10, 14, tzinfo=UTC)
    )


def test_a_run_at_the_fire_time_owns_the_interval_that_just_ended():
    now = datetime(2026, 3, 10, 0, 0, 0, 400000, tzinfo=UTC)
    window = schedule_window("0 0 * * *", "UTC", now)
    assert window.end == datetime(2026, 3, 10, tzinfo=UTC)
    assert window.start == datetime(2026, 3, 9, tzinfo=UTC)


def test_daily_window_across_a_dst_change_is_23_hours():
    now = datetime(2026, 3, 30, 12, tzinfo=UTC)
    window = schedule_window("0 0 * * *", "Europe/Berlin", now)
    assert window.end - window.start == timedelta(hours=23)
    assert window.end == datetime(2026, 3, 29, 22, tzinfo=UTC)  # midnight CEST


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(["*/5 * * * *", "0 * * * *", "30 2 * * *", "0 0 1 * *", "0 6 * * 1"]),
)
def test_scheduled_windows_end_at_or_before_now_and_tile(now, cron):
    window = schedule_window(cron, "UTC", now)
    assert window.end <= now
    next_fire = croniter(cron, window.end).get_next(datetime)
    nxt = schedule_window(cron, "UTC", next_fire)
    assert nxt.start == window.end  # consecutive windows neither overlap nor leave gaps


def test_explicit_bounds_and_defaults():
    spec = build_spec(name="x", schedule="0 * * * *")
    explicit = Window(parse_instant("2026-01-01"), parse_instant("2026-01-02T00:00:00+01:00"))
    window = resolve_window(spec, explicit=explicit)
    assert window.start == datetime(2026, 1, 1, tzinfo=UTC)
    assert window.end == datetime(2026, 1, 1, 23, tzinfo=UTC)
    manual = resolve_window(build_spec(name="x"), now=datetime(2026, 1, 1, tzinfo=UTC))
    assert manual.start == EPOCH
    assert str(window) == "2026-01-01T00:00:00+00:00/2026-01-01T23:00:00+00:00"
    assert window.contains(datetime(2026, 1, 1, 5, tzinfo=UTC))


def test_bad_bounds_are_usage_errors_naming_the_value_not_a_flag():
    with pytest.raises(UsageError, match="'tomorrow' is not an ISO 8601") as info:
        parse_instant("tomorrow")
    assert "--" not in str(info.value)
    with pytest.raises(UsageError, match="is not before end"):
        Window(parse_instant("2026-01-02"), parse_instant("2026-01-01"))
    with pytest.raises(ConfigError, match="time-zone aware"):
        Window(datetime(2026, 1, 1), datetime(2026, 1, 2))
    assert parse_instant("2026-01-01T10:00").tzinfo is UTC
    assert parse_instant(" 2026-01-01 ") == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "text", ["0001-01-01", "1899-12-31T23:59:59", "2300-01-01", "9999-12-31T23:59:59+14:00"]
)
def test_bounds_the_warehouse_cannot_store_are_refused_naming_the_range(text):
    with pytest.raises(UsageError, match="outside the range the warehouse stores") as info:
        parse_instant(text)
    assert "1900-01-01 to 2299-12-31" in str(info.value)


def test_the_storable_range_is_inclusive():
    assert parse_instant("1900-01-01") == EARLIEST
    assert parse_instant("2299-12-31T23:59:59.999") == LATEST
    assert Window(EARLIEST, LATEST).start == EARLIEST
    with pytest.raises(UsageError, match="outside the range"):
        Window(EARLIEST - timedelta(microseconds=1), LATEST)
    with pytest.raises(UsageError, match="outside the range"):  # e.g. 0001-01-01 at +01:00
        parse_instant("0001-01-01T00:30:00+01:00")


def test_fire_times_follow_the_wall_clock_through_both_clock_changes():
    from runner.pipeline.windows import fire_times

    def utc(*parts):
        return datetime(*parts, tzinfo=UTC)

    # 02:30 Berlin is skipped on 2026-03-29 (fires once, after the jump: 03:30 CEST) and
    # shown twice on 2026-10-25 (fires at both instants)
    spring = fire_times("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28), utc(2026, 3, 30))
    assert spring == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30)]
    autumn = fire_times("30 2 * * *", "Europe/Berlin", utc(2026, 10, 25), utc(2026, 10, 26))
    assert autumn == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)]


def test_a_scheduled_window_does_not_depend_on_where_a_walk_starts_in_a_repeated_half_hour():
    # Lord Howe moves its clocks by 30 minutes; found by the hostile property suite
    from runner.pipeline.backfill import parse_step, plan_windows
    from runner.pipeline.spec import PipelineSpec

    spec = PipelineSpec(name="p", schedule="*/20 * * * *", timezone="Australia/Lord_Howe")
    start = datetime(2026, 4, 4, 14, 59, tzinfo=UTC)
    planned = plan_windows(spec, start, start + timedelta(hours=1), parse_step("schedule"))
    assert planned[0].start == datetime(2026, 4, 4, 14, 40, tzinfo=UTC)  # holds the range's start
    assert planned[1].start == datetime(2026, 4, 4, 15, 10, tzinfo=UTC)  # 01:40 the 2nd time
    for window in planned:
        assert schedule_window("*/20 * * * *", "Australia/Lord_Howe", window.end) == window


def utc(*parts):
    return datetime(*parts, tzinfo=UTC)


def test_previous_fires_count_back_over_both_clock_changes():
    # 02:30 Berlin: skipped on 2026-03-29 (fires once, after the jump), doubled on 10-25
    spring = previous_fires("30 2 * * *", "Europe/Berlin", utc(2026, 3, 30, 3), 3)
    assert spring == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 30)]
    autumn = previous_fires("30 2 * * *", "Europe/Berlin", utc(2026, 10, 26, 1), 3)
    assert autumn == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)]


def test_previous_fires_include_a_fire_at_the_instant_itself():
    assert previous_fires("0 * * * *", "UTC", utc(2026, 1, 5, 14), 2) == [
        utc(2026, 1, 5, 13),
        utc(2026, 1, 5, 14),
    ]


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(["*/5 * * * *", "0 * * * *", "30 2 * * *", "0 6 * * 1"]),
    st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]),
    st.integers(1, 8),
)
@settings(deadline=None)  # the first use of a zone reads its file
def test_previous_fires_are_the_last_fire_times_the_forward_walk_finds(now, cron, zone, count):
    fires = previous_fires(cron, zone, now, count)
    assert len(fires) == count
    assert fires == fire_times(cron, zone, fires[0], now)[-count:]
    assert fire_times(cron, zone, fires[0], now) == fires  # none left out between them
    assert all(is_fire_time(cron, zone, fire) for fire in fires)
    assert not is_fire_time(cron, zone, fires[-1] + timedelta(seconds=1))
