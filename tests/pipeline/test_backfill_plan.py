from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.errors import UsageError
from runner.pipeline.backfill import make_plan, parse_step, plan_windows
from runner.pipeline.spec import build_spec
from runner.pipeline.windows import Window, schedule_window

BERLIN = ZoneInfo("Europe/Berlin")
SCHEDULE = parse_step("schedule")
FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_steps_parse():
    assert parse_step("schedule").is_schedule
    assert parse_step("1d").days == 1
    assert parse_step("6h").fixed == timedelta(hours=6)
    assert parse_step("15m").fixed == timedelta(minutes=15)
    assert parse_step("2w").days == 14
    assert parse_step("1mo").months == 1
    assert parse_step("3mo").months == 3
    assert parse_step("1y").months == 12
    for bad in ("0d", "daily", "-1h", "1.5h", "1 d", "1D", "1Y", "mo", ""):
        with pytest.raises(UsageError, match="is not a step"):
            parse_step(bad)


def test_a_capital_m_is_refused_as_ambiguous():
    with pytest.raises(UsageError, match=r"'M' is ambiguous: write 'mo' for months or 'm'"):
        parse_step("1M")


def test_domain_errors_do_not_name_cli_flags():
    for call in (
        lambda: parse_step("1M"),
        lambda: plan_windows(
            build_spec(name="p"), utc(2026, 1, 2), utc(2026, 1, 1), parse_step("1d")
        ),
    ):
        with pytest.raises(UsageError) as info:
            call()
        assert "--" not in str(info.value)


def test_schedule_windows_cover_the_range_widened_to_whole_windows():
    spec = build_spec(name="p", schedule="0 */6 * * *")
    windows = plan_windows(spec, utc(2026, 1, 1, 1), utc(2026, 1, 2, 13), SCHEDULE)
    assert [w.start.hour for w in windows] == [0, 6, 12, 18, 0, 6, 12]
    assert windows[0].start == utc(2026, 1, 1, 0)  # the window holding the range's start
    assert windows[-1].end == utc(2026, 1, 2, 18)  # the window holding the range's end
    aligned = plan_windows(spec, utc(2026, 1, 1, 6), utc(2026, 1, 2, 12), SCHEDULE)
    assert (aligned[0].start, aligned[-1].end) == (utc(2026, 1, 1, 6), utc(2026, 1, 2, 12))


def test_a_monthly_schedule_at_one_oclock_covers_the_whole_year():
    # the issue: `0 1 1 * *` over 2025 planned 11 windows and left December uncovered
    spec = build_spec(name="p", schedule="0 1 1 * *")
    year = Window(utc(2025, 1, 1), utc(2026, 1, 1))
    windows = plan_windows(spec, year.start, year.end, SCHEDULE)
    assert len(windows) == 13
    assert windows[0] == Window(utc(2024, 12, 1, 1), utc(2025, 1, 1, 1))
    assert windows[-1] == Window(utc(2025, 12, 1, 1), utc(2026, 1, 1, 1))
    plan = make_plan(year, windows, set(), now=FAR_FUTURE)
    assert plan.widened
    assert plan.as_dict()["planned"] == ["2024-12-01T01:00:00+00:00", "2026-01-01T01:00:00+00:00"]
    assert plan.as_dict()["requested"] == ["2025-01-01T00:00:00+00:00", "2026-01-01T00:00:00+00:00"]


def test_windows_that_have_not_ended_are_left_out_and_named():
    spec = build_spec(name="p", schedule="0 0 * * *")
    asked = Window(utc(2026, 3, 1), utc(2026, 3, 10))
    windows = plan_windows(spec, asked.start, asked.end, SCHEDULE)
    plan = make_plan(asked, windows, set(), now=utc(2026, 3, 5, 12))
    assert [w.start.day for w in plan.todo] == [1, 2, 3, 4]
    assert [w.start.day for w in plan.unfinished] == [5, 6, 7, 8, 9]
    assert plan.as_dict()["left_out"][0] == {
        "window": ["2026-03-05T00:00:00+00:00", "2026-03-06T00:00:00+00:00"],
        "reason": "not ended yet",
    }
    assert not plan.widened


def test_daily_windows_follow_the_local_calendar_across_dst():
    spec = build_spec(name="p", schedule="0 0 * * *", timezone="Europe/Berlin")
    start = datetime(2026, 3, 28, tzinfo=BERLIN)
    end = datetime(2026, 3, 31, tzinfo=BERLIN)
    for step in (SCHEDULE, parse_step("1d")):
        windows = plan_windows(spec, start, end, step)
        assert [w.end - w.start for w in windows] == [
            timedelta(hours=24),
            timedelta(hours=23),
            timedelta(hours=24),
        ]


def test_monthly_schedule_across_month_ends():
    spec = build_spec(name="p", schedule="0 0 1 * *")
    windows = plan_windows(spec, utc(2026, 1, 1), utc(2026, 5, 1), SCHEDULE)
    assert [(w.end - w.start).days for w in windows] == [31, 28, 31, 30]


def test_month_steps_keep_the_day_clamped_to_short_months():
    spec = build_spec(name="p")
    windows = plan_windows(spec, utc(2024, 1, 31), utc(2024, 6, 1), parse_step("1mo"))
    starts = [w.start.date().isoformat() for w in windows]
    # counted from the range's start, never chained: Feb 29 does not drag March to the 29th
    assert starts == ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31"]
    assert windows[-1].end == utc(2024, 6, 1)


def test_month_and_year_steps_follow_the_zone_calendar():
    spec = build_spec(name="p", timezone="Europe/Berlin")
    start = datetime(2026, 1, 1, tzinfo=BERLIN)
    months = plan_windows(spec, start, datetime(2027, 1, 1, tzinfo=BERLIN), parse_step("1mo"))
    assert len(months) == 12
    assert all(w.start.astimezone(BERLIN).time().hour == 0 for w in months)
    assert months[3].start == datetime(2026, 4, 1, tzinfo=BERLIN)  # CEST: 22:00 UTC
    years = plan_windows(
        spec,
        datetime(2024, 2, 29, tzinfo=BERLIN),
        datetime(2028, 3, 1, tzinfo=BERLIN),
        parse_step("1y"),
    )
    assert [w.start.astimezone(BERLIN).date().isoformat() for w in years] == [
        "2024-02-29",
        "2025-02-28",
        "2026-02-28",
        "2027-02-28",
        "2028-02-29",
    ]


def test_stepped_windows_cut_the_last_one_at_the_end():
    spec = build_spec(name="p")
    windows = plan_windows(spec, utc(2026, 1, 1), utc(2026, 1, 1, 20), parse_step("6h"))
    assert windows[-1].end == utc(2026, 1, 1, 20)
    assert len(windows) == 4


def test_planning_errors():
    with pytest.raises(UsageError, match="has no schedule"):
        plan_windows(build_spec(name="p"), utc(2026, 1, 1), utc(2026, 1, 2), SCHEDULE)
    with pytest.raises(UsageError, match="is not before"):
        plan_windows(build_spec(name="p"), utc(2026, 1, 2), utc(2026, 1, 1), parse_step("1d"))


def test_huge_steps_stop_at_the_end_of_the_range():
    spec = build_spec(name="p")
    [window] = plan_windows(spec, utc(2026, 1, 1), utc(2027, 1, 1), parse_step("999999y"))
    assert window == Window(utc(2026, 1, 1), utc(2027, 1, 1))


@settings(max_examples=60, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(min_value=1, max_value=24 * 40),
    st.sampled_from(["0 * * * *", "30 2 * * *", "0 0 * * 1", "*/20 * * * *", "0 1 1 * *"]),
    st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]),
)
def test_schedule_windows_tile_and_cover_the_range(start, hours, cron, zone):
    spec = build_spec(name="p", schedule=cron, timezone=zone)
    end = start + timedelta(hours=hours)
    windows = plan_windows(spec, start, end, SCHEDULE)
    for a, b in pairwise(windows):
        assert a.end == b.start
    assert windows[0].start <= start
    assert windows[-1].end >= end
    # widened by less than a whole window at either edge
    assert windows[0].end > start
    assert windows[-1].start < end
    assert schedule_window(cron, zone, windows[0].end) == windows[0]


@settings(max_examples=60, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(min_value=1, max_value=60),
    st.sampled_from(["1mo", "2mo", "1y"]),
    st.sampled_from(["UTC", "Europe/Berlin", "Australia/Lord_Howe"]),
)
def test_calendar_steps_cover_the_range_exactly(start, months, step, zone):
    spec = build_spec(name="p", timezone=zone)
    end = start + timedelta(days=31 * months)
    windows = plan_windows(spec, start, end, parse_step(step))
    assert windows[0].start == start
    assert windows[-1].end == end
    for a, b in pairwise(windows):
        assert a.end == b.start
    assert all(w.end - w.start <= timedelta(days=367) for w in windows)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.booleans(), min_size=1, max_size=40),
    st.booleans(),
    st.booleans(),
)
def test_only_missing_and_all(done_flags, only_missing, reverse):
    spec = build_spec(name="p", schedule="0 0 * * *")
    asked = Window(utc(2026, 1, 1), utc(2026, 1, 1) + timedelta(days=len(done_flags)))
    windows = plan_windows(spec, asked.start, asked.end, SCHEDULE)
    succeeded = {(w.start, w.end) for w, done in zip(windows, done_flags, strict=True) if done}
    plan = make_plan(
        asked, windows, succeeded, only_missing=only_missing, reverse=reverse, now=FAR_FUTURE
    )
    assert len(plan.done) == sum(done_flags)
    expected = [w for w in windows if not only_missing or (w.start, w.end) not in succeeded]
    assert plan.todo == (expected[::-1] if reverse else expected)
