"""Scheduled runs on chDB: the window comes from the scheduled time, earlier windows that
never succeeded are caught up first (in order, once each), with an injected clock."""

from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from runner.errors import ConfigError, FatalError, RetriableError
from runner.pipeline.discovery import Registry
from runner.pipeline.windows import Window
from runner.services.catchup import run_scheduled
from runner.services.run import run_pipeline, window_lock_name
from runner.state.locks import make_lock
from runner.state.runs import RunHistory

PIPELINE = """
from datetime import timedelta
from runner import RetriableError, clickhouse_append, el

def extract(ctx):
    start = ctx.window.start
    if start.isoformat() in ctx.params.get("fail", "").split(","):
        raise ValueError("the source has no data for this window")
    ts = start
    while ts < ctx.window.end:  # a row every 10 minutes of the window
        if ts.minute == int(ctx.params.get("break_at_minute", "-1")):
            raise RetriableError("the source went away")
        yield [{{"id": int(ts.timestamp()) // 60, "ts": ts}}]
        ts += timedelta(minutes=10)

pipeline = el("{name}", schedule="0 * * * *", {options} extract=extract,
              load=clickhouse_append("ticks"))
"""
INCREMENTAL = """
from runner import el
pipeline = el("inc", schedule="0 * * * *", incremental=True, extract=[], load=lambda b: None)
"""
MIGRATION = (
    "CREATE TABLE {{database}}.ticks (id UInt64, ts DateTime64(3, 'UTC')) ENGINE = MergeTree "
    "ORDER BY id SETTINGS non_replicated_deduplication_window = 1000"
)
CRONJOB = "pipelines-pipeline-runner-hourly"


def at(hour, minute=0, day=5):
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


def hour_window(hour):
    return Window(at(hour), at(hour) + timedelta(hours=1))


def job_name(hour, cronjob=CRONJOB):
    """The name the CronJob controller gives the Job scheduled at ``hour``."""
    return f"{cronjob}-{int(at(hour).timestamp()) // 60}"


@pytest.fixture
def project(tmp_path):
    pipelines = tmp_path / "pipelines"
    pipelines.mkdir()
    (pipelines / "hourly_pipeline.py").write_text(PIPELINE.format(name="hourly", options=""))
    (pipelines / "nocatch_pipeline.py").write_text(
        PIPELINE.format(name="nocatch", options="catchup=0,")
    )
    (pipelines / "inc_pipeline.py").write_text(INCREMENTAL)
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001_ticks.sql").write_text(MIGRATION)
    return tmp_path


@pytest.fixture
def settings(runner_settings, project, warehouse):
    from runner.migrate.apply import Migrator

    Migrator(
        warehouse, project / "migrations", state_database=runner_settings.state_database
    ).apply()
    return runner_settings.model_copy(
        update={
            "project_dir": project,
            "lock_backend": "file",
            "trigger": "schedule",
            "cronjob_name": CRONJOB,
            "batch_rows": 2,
            "insert_rows": 2,
        }
    )


@pytest.fixture
def registry(project):
    return Registry(project / "pipelines")


def scheduled(settings, registry, hour, now, name="hourly", **kwargs):
    """What the Job of the fire time ``hour`` does when its pod starts at ``now``."""
    job = settings.model_copy(update={"job_name": job_name(hour, f"{CRONJOB[:-6]}{name}")})
    if name != "hourly":
        job = job.model_copy(update={"cronjob_name": f"{CRONJOB[:-6]}{name}"})
    return run_scheduled(job, registry, name, now=now, **kwargs)


def runs(warehouse, settings, name="hourly"):
    """Every run of ``name``, oldest first: (window start hour, trigger, status)."""
    history = RunHistory(warehouse, settings.state_database)
    records = sorted(history.recent(name, limit=1000), key=lambda r: r.started_at)
    return [(r.window_start.hour, r.trigger, r.status) for r in records]


def rows_per_hour(warehouse):
    rows = warehouse.query_rows(
        f"SELECT toHour(ts), count(), uniqExact(id) FROM {warehouse.database}.ticks "
        "GROUP BY toHour(ts) ORDER BY 1"
    )
    return {int(hour): (int(count), int(unique)) for hour, count, unique in rows}


def test_a_job_started_two_fire_times_late_loads_its_own_window(settings, registry, warehouse):
    # the Job of 14:00 starts at 16:05, after the fire times 15:00 and 16:00
    with capture_logs() as logs:
        result = scheduled(settings, registry, hour=14, now=at(16, 5))
    assert result.window == hour_window(13)
    assert rows_per_hour(warehouse) == {13: (6, 6)}
    assert runs(warehouse, settings) == [(13, "schedule", "succeeded")]
    [source] = [e for e in logs if e["event"] == "window from the scheduled time"]
    assert source["window_source"] == "job-name"
    assert source["scheduled_time"] == "2026-01-05T14:00:00+00:00"
    # the wall clock alone would have loaded the window that ends at 16:00
    wall = run_scheduled(
        settings.model_copy(update={"trigger": "manual"}), registry, "hourly", now=at(16, 5)
    )
    assert wall.window == hour_window(15)


def test_a_retried_job_after_the_next_fire_time_loads_the_same_window_once(
    settings, registry, warehouse
):
    # the first pod of the 14:00 Job fails midway (after two inserts landed) ...
    with pytest.raises(RetriableError, match="went away"):
        scheduled(settings, registry, hour=14, now=at(14, 1), params={"break_at_minute": "40"})
    assert rows_per_hour(warehouse) == {13: (4, 4)}
    # ... and its retry starts after 15:00: the same window, the same tokens, every row once
    result = scheduled(settings, registry, hour=14, now=at(15, 10), params={})
    assert result.window == hour_window(13)
    assert rows_per_hour(warehouse) == {13: (6, 6)}
    assert runs(warehouse, settings) == [(13, "schedule", "failed"), (13, "schedule", "succeeded")]
    # a third pod of the same Job finds the window done and adds nothing
    again = scheduled(settings, registry, hour=14, now=at(15, 20))
    assert (again.window, again.status) == (hour_window(13), "skipped")
    assert len(runs(warehouse, settings)) == 2


def test_three_missed_windows_are_caught_up_in_order_exactly_once(settings, registry, warehouse):
    scheduled(settings, registry, hour=11, now=at(11, 1))  # loads 10:00-11:00
    # no Job at 12:00, 13:00 or 14:00 (controller down); the 15:00 Job catches up
    with capture_logs() as logs:
        result = scheduled(settings, registry, hour=15, now=at(15, 2))
    assert result.window == hour_window(14)
    assert runs(warehouse, settings) == [
        (10, "schedule", "succeeded"),
        (11, "catchup", "succeeded"),
        (12, "catchup", "succeeded"),
        (13, "catchup", "succeeded"),
        (14, "schedule", "succeeded"),
    ]
    assert rows_per_hour(warehouse) == dict.fromkeys(range(10, 15), (6, 6))
    [plan] = [e for e in logs if e["event"] == "catching up earlier windows first"]
    assert plan["windows"] == [str(hour_window(h)) for h in (11, 12, 13)]
    # the next Job, and a retry of this one, catch up nothing: each window ran once
    scheduled(settings, registry, hour=16, now=at(16, 1))
    scheduled(settings, registry, hour=15, now=at(16, 2))
    history = runs(warehouse, settings)
    assert [h for h, _, status in history if status == "succeeded"] == [10, 11, 12, 13, 14, 15]
    assert len(history) == 6
    assert rows_per_hour(warehouse) == dict.fromkeys(range(10, 16), (6, 6))


def test_catchup_zero_disables_it(settings, registry, warehouse):
    scheduled(settings, registry, hour=11, now=at(11, 1), name="nocatch")
    scheduled(settings, registry, hour=15, now=at(15, 2), name="nocatch")
    assert runs(warehouse, settings, "nocatch") == [
        (10, "schedule", "succeeded"),
        (14, "schedule", "succeeded"),
    ]
    assert rows_per_hour(warehouse) == {10: (6, 6), 14: (6, 6)}


def test_the_bound_catches_up_the_newest_windows_and_names_the_backfill_for_older_ones(
    settings, registry, warehouse
):
    scheduled(settings, registry, hour=6, now=at(6, 1))  # loads 05:00-06:00
    # nine windows (06:00 to 15:00) never ran; the bound is 3
    with capture_logs() as logs:
        scheduled(settings, registry, hour=16, now=at(16, 1))
    assert [(h, trigger) for h, trigger, _ in runs(warehouse, settings)] == [
        (5, "schedule"),
        (12, "catchup"),
        (13, "catchup"),
        (14, "catchup"),
        (15, "schedule"),
    ]
    [gap] = [e for e in logs if e["event"].startswith("windows older than the catch-up bound")]
    assert gap["log_level"] == "warning"
    assert gap["command"] == (
        "runner backfill run hourly --start 2026-01-05T06:00:00+00:00 "
        "--end 2026-01-05T12:00:00+00:00"
    )
    # after that backfill, nothing is missing: the next run warns no more
    outcome = run_pipeline(
        settings.model_copy(update={"trigger": "backfill"}),
        registry,
        "hourly",
        window=Window(at(6), at(12)),  # one backfill window covering six scheduled ones
    )
    assert outcome.status == "succeeded"
    with capture_logs() as logs:
        scheduled(settings, registry, hour=17, now=at(17, 1))
    assert not [e for e in logs if e["log_level"] == "warning"]
    assert rows_per_hour(warehouse) == dict.fromkeys(range(5, 17), (6, 6))


def test_a_first_run_has_nothing_to_catch_up(settings, registry, warehouse):
    with capture_logs() as logs:
        scheduled(settings, registry, hour=15, now=at(15, 2))
    assert runs(warehouse, settings) == [(14, "schedule", "succeeded")]
    [nothing] = [e for e in logs if e["event"] == "nothing to catch up"]
    assert nothing["reason"] == "first run of the pipeline"


def test_windows_running_elsewhere_or_already_backfilled_are_not_caught_up(
    settings, registry, warehouse
):
    scheduled(settings, registry, hour=11, now=at(11, 1))  # 10:00-11:00
    run_pipeline(  # 12:00-13:00 was backfilled
        settings.model_copy(update={"trigger": "backfill"}),
        registry,
        "hourly",
        window=hour_window(12),
    )
    busy = make_lock(
        settings.model_copy(update={"identity": "backfill-pod"}),
        window_lock_name("hourly", hour_window(11)),
    )
    busy.acquire()  # 11:00-12:00 is being loaded by another run right now
    try:
        with capture_logs() as logs:
            scheduled(settings, registry, hour=15, now=at(15, 2))
    finally:
        busy.release()
    assert runs(warehouse, settings) == [
        (10, "schedule", "succeeded"),
        (12, "backfill", "succeeded"),
        (13, "catchup", "succeeded"),
        (14, "schedule", "succeeded"),
    ]
    [left] = [e for e in logs if e["event"] == "catch-up window left to the run holding its lock"]
    assert left["window"] == str(hour_window(11))
    assert "backfill-pod" in left["error"]


def test_a_failed_catch_up_window_does_not_stop_the_rest_and_fails_the_job(
    settings, registry, warehouse
):
    scheduled(settings, registry, hour=11, now=at(11, 1))
    broken = {"fail": at(12).isoformat()}
    with pytest.raises(FatalError, match="no data for this window"):
        scheduled(settings, registry, hour=15, now=at(15, 2), params=broken)
    assert runs(warehouse, settings) == [
        (10, "schedule", "succeeded"),
        (11, "catchup", "succeeded"),
        (12, "catchup", "failed"),
        (13, "catchup", "succeeded"),
        (14, "schedule", "succeeded"),
    ]
    # the next scheduled run tries the failed window again (it is within the bound)
    scheduled(settings, registry, hour=16, now=at(16, 1))
    assert runs(warehouse, settings)[-2:] == [
        (12, "catchup", "succeeded"),
        (15, "schedule", "succeeded"),
    ]
    assert rows_per_hour(warehouse) == dict.fromkeys(range(10, 16), (6, 6))


def test_a_job_created_by_hand_is_a_manual_run_from_the_wall_clock(settings, registry, warehouse):
    scheduled(settings, registry, hour=11, now=at(11, 1))
    # kubectl create job --from=cronjob/... <cronjob>-m<epoch seconds>, as the notes say
    manual = settings.model_copy(update={"job_name": f"{CRONJOB}-m{int(at(15, 30).timestamp())}"})
    with capture_logs() as logs:
        result = run_scheduled(manual, registry, "hourly", now=at(15, 31))
    assert result.window == hour_window(14)  # the latest window by the wall clock
    assert runs(warehouse, settings) == [(10, "schedule", "succeeded"), (14, "manual", "succeeded")]
    [source] = [e for e in logs if e["event"].startswith("window from the wall clock")]
    assert source["window_source"] == "wall-clock"
    assert source["job"] == manual.job_name


def test_an_explicit_scheduled_time_off_the_grid_runs_the_window_before_it_with_a_warning(
    settings, registry, warehouse
):
    other = settings.model_copy(update={"scheduled_time": at(14, 30), "cronjob_name": None})
    with capture_logs() as logs:
        result = run_scheduled(other, registry, "hourly", now=at(18))
    assert result.window == hour_window(13)
    [warning] = [e for e in logs if e["log_level"] == "warning"]
    assert warning["event"].startswith("the scheduled time is not a fire time")
    assert warning["window_source"] == "RUNNER_SCHEDULED_TIME"


def test_sources_that_disagree_or_a_time_to_come_are_refused(settings, registry, warehouse):
    both = settings.model_copy(update={"job_name": job_name(14), "scheduled_time": at(15)})
    with pytest.raises(ConfigError, match="disagrees with the scheduled time"):
        run_scheduled(both, registry, "hourly", now=at(16))
    with pytest.raises(ConfigError, match="later than this process's clock"):
        scheduled(settings, registry, hour=14, now=at(13, 50))
    assert runs(warehouse, settings) == []


def test_an_incremental_pipeline_follows_its_watermark_up_to_its_scheduled_time(
    settings, registry, warehouse
):
    first = scheduled(settings, registry, hour=11, now=at(11, 1), name="inc")
    assert first.window == hour_window(10)
    # the 15:00 Job starts at 17:05: from the watermark to its own fire time, no catch-up
    late = scheduled(settings, registry, hour=15, now=at(17, 5), name="inc")
    assert late.window == Window(at(11), at(15))
    assert [trigger for _, trigger, _ in runs(warehouse, settings, "inc")] == ["schedule"] * 2
