"""Which instant a run without --start/--end is for: Job name, RUNNER_SCHEDULED_TIME, clock."""

from datetime import UTC, datetime, timedelta

import pytest

from runner.deploy.names import cronjob_name
from runner.errors import ConfigError
from runner.services.window_source import CLOCK_SKEW_ALLOWED, Source, run_time
from runner.settings import Settings

NOW = datetime(2026, 1, 5, 16, 5, tzinfo=UTC)
CRONJOB = "pipelines-pipeline-runner-events"


def minutes(instant):
    return int(instant.timestamp()) // 60


def settings(**fields):
    return Settings(**fields)


def test_the_cronjob_controllers_job_name_gives_the_scheduled_time():
    scheduled = datetime(2026, 1, 5, 14, tzinfo=UTC)
    job = f"{CRONJOB}-{minutes(scheduled)}"
    found = run_time(settings(cronjob_name=CRONJOB, job_name=job), NOW)
    assert (found.at, found.source, found.manual_job) == (scheduled, Source.JOB_NAME, None)
    assert found.scheduled
    assert found.log_fields() == {
        "window_source": "job-name",
        "scheduled_time": "2026-01-05T14:00:00+00:00",
    }


def test_a_cut_cronjob_name_with_its_hash_still_matches():
    cronjob = cronjob_name("a-very-long-release-name-pipeline-runner", "a_long_pipeline_name_x")
    assert len(cronjob) <= 52
    assert not cronjob.endswith("name-x")  # cut, with a hash of the pipeline
    job = f"{cronjob}-{minutes(NOW)}"
    assert len(job) <= 63
    found = run_time(settings(cronjob_name=cronjob, job_name=job), NOW + timedelta(minutes=1))
    assert found.source is Source.JOB_NAME


@pytest.mark.parametrize(
    "job",
    [
        f"{CRONJOB}-m{int(NOW.timestamp())}",  # the chart's notes: kubectl create job --from
        f"{CRONJOB[:51]}-m{int(NOW.timestamp())}",
        f"{CRONJOB}-bf-12345678",  # a backfill Job (its id may be all digits)
        f"{CRONJOB}-manual",
        f"{CRONJOB}-",
        f"{CRONJOB}-{'١٢٣٤'}",  # Arabic-Indic digits: str.isdigit() says yes, cron does not
        f"other-{minutes(NOW)}",  # not this pod's CronJob
        CRONJOB,
    ],
)
def test_a_job_not_named_by_the_controller_is_a_manual_run_from_the_wall_clock(job):
    found = run_time(settings(cronjob_name=CRONJOB, job_name=job), NOW)
    assert (found.at, found.source, found.manual_job) == (NOW, Source.WALL_CLOCK, job)
    assert not found.scheduled


def test_outside_kubernetes_the_wall_clock_decides():
    assert run_time(settings(), NOW) == run_time(settings(job_name=f"x-{minutes(NOW)}"), NOW)
    found = run_time(settings(), NOW)
    assert (found.at, found.source, found.manual_job) == (NOW, Source.WALL_CLOCK, None)


def test_an_explicit_scheduled_time_for_other_schedulers():
    found = run_time(settings(scheduled_time="2026-01-05T15:00:00+01:00"), NOW)
    assert (found.at, found.source) == (datetime(2026, 1, 5, 14, tzinfo=UTC), Source.SCHEDULED_TIME)
    # it also wins over a Job created by hand
    job = f"{CRONJOB}-m1"
    hand = run_time(
        settings(scheduled_time="2026-01-05T14:00", cronjob_name=CRONJOB, job_name=job), NOW
    )
    assert hand.source is Source.SCHEDULED_TIME


def test_both_sources_must_agree():
    scheduled = datetime(2026, 1, 5, 14, tzinfo=UTC)
    job = f"{CRONJOB}-{minutes(scheduled)}"
    same = settings(cronjob_name=CRONJOB, job_name=job, scheduled_time=scheduled.isoformat())
    assert run_time(same, NOW).source is Source.JOB_NAME
    other = settings(cronjob_name=CRONJOB, job_name=job, scheduled_time="2026-01-05T15:00")
    with pytest.raises(ConfigError, match=r"RUNNER_SCHEDULED_TIME .* disagrees .*RUNNER_JOB_NAME"):
        run_time(other, NOW)


def test_a_scheduled_time_still_to_come_is_refused_beyond_clock_skew():
    ahead = NOW + CLOCK_SKEW_ALLOWED
    assert run_time(settings(scheduled_time=ahead.isoformat()), NOW).at == ahead
    too_far = (ahead + timedelta(minutes=1)).isoformat()
    with pytest.raises(ConfigError, match=r"RUNNER_SCHEDULED_TIME: the scheduled time .* later"):
        run_time(settings(scheduled_time=too_far), NOW)
    job = f"{CRONJOB}-{minutes(NOW) + 60}"
    with pytest.raises(ConfigError, match=f"RUNNER_JOB_NAME '{job}'"):
        run_time(settings(cronjob_name=CRONJOB, job_name=job), NOW)


@pytest.mark.parametrize(
    ("suffix", "problem"),
    [
        ("9" * 13, "is not a scheduled time in minutes"),
        ("9" * 4400, "is not a scheduled time in minutes"),  # beyond int()'s digit limit
        ("999999999999", "outside the range the warehouse stores"),
    ],
)
def test_a_job_name_whose_digits_are_no_storable_time_is_refused(suffix, problem):
    job = f"{CRONJOB}-{suffix}"
    with pytest.raises(ConfigError, match=problem) as caught:
        run_time(settings(cronjob_name=CRONJOB, job_name=job), NOW)
    assert "\n" not in str(caught.value)
