"""Property-based tests: random settings, declarations and ranges end in a value or in
the framework's one-line error, never in another exception.

Window planning already has tiling and only-missing properties in
tests/pipeline/test_backfill_plan.py; these add stepped ranges, random step texts and the
promise that a backfilled window is the very window the schedule would have run.
"""

from __future__ import annotations

import math
import os
import zoneinfo
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner import el
from runner.errors import ConfigError, PipelineDefinitionError, UsageError
from runner.pipeline.backfill import parse_step, plan_windows
from runner.pipeline.spec import build_spec
from runner.pipeline.windows import resolve_window, schedule_window
from runner.settings import ENV_PREFIX, Settings, load_settings

FIELDS = sorted(Settings.model_fields)
ZONES = sorted(zoneinfo.available_timezones())
SAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text_values = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
    max_size=40,
)
number_like = st.sampled_from(
    ["0", "-1", "1", "1.5", "1e309", "inf", "-inf", "nan", "NaN", "9" * 40, "0x10", " 7 ", ""]
)
word_like = st.sampled_from(
    [
        "true",
        "false",
        "yes",
        "json",
        "console",
        "auto",
        "file",
        "lease",
        "none",
        "debug",
        "schedule",
        "backfill",
        "chdb:///tmp/x",
        "http://h:99999/db",
        "https://u:p@h/db",
        "a;b",
        "`x`",
        "db name",
        "analytics",
    ]
)
env_values = st.dictionaries(
    st.sampled_from(FIELDS), st.one_of(text_values, number_like, word_like), max_size=6
)


@SAMPLES
@given(env_values)
def test_settings_from_any_environment_are_valid_or_one_line(values):
    environ = {f"{ENV_PREFIX}{name.upper()}": value for name, value in values.items()}
    with mock.patch.dict(os.environ, environ):
        try:
            loaded = load_settings()
        except ConfigError as exc:
            loaded, error = None, str(exc)
    if loaded is None:
        assert "\n" not in error
        assert error.startswith("invalid settings: RUNNER_")
        return
    for name in FIELDS:  # a valid setting is usable: no inf/nan durations
        value = getattr(loaded, name)
        if isinstance(value, float):
            assert math.isfinite(value), (name, value)
    for name in ("database", "state_database", "cluster"):
        value = getattr(loaded, name)
        assert value is None or value.replace("_", "a").isalnum(), (name, value)


crons = st.one_of(
    st.sampled_from(
        [
            "@daily",
            "@hourly",
            "@reboot",
            "@every 5m",
            "0 0 30 2 *",
            "0 0 29 2 *",
            "0 0 31 4 *",
            "*/0 * * * *",
            "60 * * * *",
            "0 24 * * *",
            "0 0 * * 7",
            "0 0 L * *",
            "0 0 ? * *",
            "0 0 1W * *",
            "0 0 * * MON-FRI",
            "* * * * * *",
            "",
            "   ",
            "0 0 1 1 1",
        ]
    ),
    st.lists(
        st.one_of(
            st.integers(-2, 70).map(str),
            st.sampled_from(["*", "*/5", "1-3", "5-1", "1,2", "a", "JAN", "-", "/", "*/99"]),
        ),
        min_size=4,
        max_size=6,
    ).map(" ".join),
)
zones = st.one_of(
    st.sampled_from(ZONES),
    st.sampled_from(["Europe", "", "../etc/passwd", "/UTC", "UTC/", "zone.tab", "Mars/Base"]),
    text_values,
)
resources = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["cpu_request", "cpu_limit", "memory_request", "memory_limit", "gpu"]),
        st.one_of(st.sampled_from(["500m", "1Gi", "1.5", "-1", "1e3", "", "2 Gi"]), text_values),
        max_size=3,
    ),
)
names = st.one_of(st.from_regex(r"\A[a-z][a-z0-9_]{0,50}\Z"), text_values)


@SAMPLES
@given(
    name=names,
    schedule=st.one_of(st.none(), crons),
    timezone=zones,
    resources=resources,
    timeout=st.one_of(st.none(), st.integers(-5, 10**12)),
    tags=st.lists(text_values, max_size=3),
)
def test_declarations_are_a_pipeline_or_a_definition_error(
    *, name, schedule, timezone, resources, timeout, tags
):
    try:
        pipeline = el(
            name,
            extract=[],
            load=print,
            schedule=schedule,
            timezone=timezone,
            resources=resources,
            timeout_seconds=timeout,
            tags=tags,
        )
    except PipelineDefinitionError as exc:
        pipeline, error = None, str(exc)
    if pipeline is None:
        assert "\n" not in error
        return
    # whatever was accepted can be run: its default window resolves
    now = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    window = resolve_window(pipeline.spec, now=now)
    assert window is not None
    assert window.end <= now


@SAMPLES
@given(st.text(max_size=12))
def test_any_step_text_is_a_duration_or_a_config_error(text):
    try:
        step = parse_step(text)
    except UsageError as exc:
        step, error = None, str(exc)
    if step is None:
        assert "is not a step" in error
        assert "\n" not in error
        return
    assert (
        step.is_schedule
        or (step.fixed or timedelta(0)) > timedelta(0)
        or step.days > 0
        or step.months > 0
    )


# Clock changes of the zones below (EU, US, Lord Howe), where windows go wrong if anywhere.
DST_CHANGES = [
    datetime(2026, 3, 29, 1, tzinfo=UTC),
    datetime(2026, 10, 25, 1, tzinfo=UTC),
    datetime(2026, 3, 8, 7, tzinfo=UTC),
    datetime(2026, 11, 1, 6, tzinfo=UTC),
    datetime(2026, 4, 4, 15, tzinfo=UTC),
    datetime(2026, 10, 3, 16, tzinfo=UTC),
]
instants = st.one_of(
    st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
    st.builds(
        lambda change, minutes: change - timedelta(minutes=minutes),
        st.sampled_from(DST_CHANGES),
        st.integers(min_value=0, max_value=3 * 24 * 60),
    ),
)


@SAMPLES
@given(
    instants,
    st.integers(min_value=1, max_value=24 * 60),
    st.sampled_from(["15m", "1h", "6h", "1d", "2d", "1w"]),
    st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]),
)
def test_stepped_windows_cover_the_range_exactly(start, hours, step_text, zone):
    spec = build_spec(name="p", timezone=zone)
    end = start + timedelta(hours=hours)
    windows = plan_windows(spec, start, end, parse_step(step_text))
    assert windows[0].start == start
    assert windows[-1].end == end
    for a, b in pairwise(windows):
        assert a.end == b.start
    step = parse_step(step_text)
    for window in windows:
        assert window.start < window.end
        # calendar days across DST are 23 to 25 hours (Lord Howe: half an hour)
        assert window.end - window.start <= (step.fixed or timedelta(days=step.days)) + timedelta(
            hours=1
        )


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(
    instants,
    st.integers(min_value=1, max_value=24 * 4),
    st.sampled_from(
        [
            "0 * * * *",
            "30 2 * * *",
            "*/20 * * * *",
            "0 0 * * 1",
            "0 0 1 * *",
            "15 1,13 * * *",
            "0 2 * * *",
        ]
    ),
    st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]),
)
def test_a_backfilled_window_is_the_window_its_scheduled_run_covers(start, hours, cron, zone):
    spec = build_spec(name="p", schedule=cron, timezone=zone)
    for window in plan_windows(spec, start, start + timedelta(hours=hours), parse_step("schedule")):
        # the scheduled run at the window's end covers exactly this window: same lock,
        # same deduplication tokens as the backfill
        assert schedule_window(cron, zone, window.end) == window


@pytest.mark.parametrize("cron", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 11 *"])
def test_a_schedule_that_never_fires_is_refused_at_declaration(cron):
    with pytest.raises(PipelineDefinitionError, match="never fires"):
        build_spec(name="p", schedule=cron)
    assert build_spec(name="p", schedule="0 0 29 2 *").schedule == "0 0 29 2 *"
