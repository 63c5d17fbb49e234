"""Which instant a run without ``--start/--end`` is for: the time it was scheduled, else now.

A CronJob's Job may start late (a busy node, a slow image pull, a controller catching up)
or be retried after the next fire time.  A window cut from "now" would then be the next
window, and the one the Job was made for would never be loaded.  So a scheduled run asks
when it was scheduled, in this order:

1. ``RUNNER_JOB_NAME`` is exactly ``<RUNNER_CRONJOB_NAME>-<digits>``: the CronJob
   controller names its Jobs after the scheduled time in minutes since the epoch, and the
   chart passes both names to the pod (the Job's through the downward API; the
   ``batch.kubernetes.io/cronjob-scheduled-timestamp`` annotation says the same but is on
   the Job only, never on its pods);
2. ``RUNNER_SCHEDULED_TIME`` (ISO 8601), for other schedulers and for tests;
3. the wall clock: outside Kubernetes, and for Jobs created by hand from the CronJob
   (``kubectl create job --from=cronjob/...``, named ``...-m<seconds>`` as the chart's
   notes suggest), which are recorded as manual runs, not scheduled ones.

If 1 and 2 both name a time they must agree.  A scheduled time later than this process's
clock by more than a few minutes of clock skew is refused: no scheduler creates a Job for
a time still to come, and a window that has not ended holds incomplete data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError, UsageError
from runner.pipeline.windows import EPOCH, check_storable

if TYPE_CHECKING:
    from runner.settings import Settings

#: How far a scheduled time may lie ahead of this process's clock (clocks of the
#: controller's node and the pod's node differ by seconds, rarely more).
CLOCK_SKEW_ALLOWED = timedelta(minutes=5)
_MINUTES = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit() takes '١٢'


class Source(StrEnum):
    """Who decided the instant a run's window ends at."""

    JOB_NAME = "job-name"
    SCHEDULED_TIME = "RUNNER_SCHEDULED_TIME"
    WALL_CLOCK = "wall-clock"


@dataclass(frozen=True)
class RunTime:
    """The instant a run is for, and where it came from."""

    at: datetime
    source: Source
    manual_job: str | None = None  # a Job created by hand from the CronJob

    @property
    def scheduled(self) -> bool:
        """Whether a scheduler said when this run was meant to start."""
        return self.source is not Source.WALL_CLOCK

    def log_fields(self) -> dict[str, Any]:
        """What the run's log says about its window's source."""
        fields: dict[str, Any] = {"window_source": str(self.source)}
        if self.scheduled:
            fields["scheduled_time"] = self.at.isoformat()
        if self.manual_job:
            fields["job"] = self.manual_job
        return fields


def run_time(settings: Settings, now: datetime | None = None) -> RunTime:
    """The instant the run is for (see the module's docstring); ConfigError when unusable."""
    moment = now or datetime.now(UTC)
    from_name, manual_job = _from_job_name(settings.job_name, settings.cronjob_name)
    explicit = settings.scheduled_time
    if from_name is not None and explicit is not None and from_name != explicit:
        raise ConfigError(
            f"RUNNER_SCHEDULED_TIME {explicit.isoformat()} disagrees with the scheduled time "
            f"{from_name.isoformat()} in the Job name RUNNER_JOB_NAME={settings.job_name!r}; "
            "unset RUNNER_SCHEDULED_TIME in the CronJob's pods"
        )
    if from_name is not None:
        found = RunTime(from_name, Source.JOB_NAME)
    elif explicit is not None:
        found = RunTime(explicit, Source.SCHEDULED_TIME)
    else:
        return RunTime(moment, Source.WALL_CLOCK, manual_job)
    if found.at > moment + CLOCK_SKEW_ALLOWED:
        said = (
            f"RUNNER_JOB_NAME {settings.job_name!r}"
            if found.source is Source.JOB_NAME
            else "RUNNER_SCHEDULED_TIME"
        )
        raise ConfigError(
            f"{said}: the scheduled time {found.at.isoformat()} is later than this "
            f"process's clock ({moment.isoformat(timespec='seconds')}) by more than "
            f"{CLOCK_SKEW_ALLOWED.total_seconds() / 60:g} minutes; its window has not ended"
        )
    return found


def _from_job_name(job: str | None, cronjob: str | None) -> tuple[datetime | None, str | None]:
    """The scheduled time a CronJob controller's Job name carries, or a hand-made Job's name.

    A Job of the CronJob whose name is not ``<cronjob>-<minutes>`` was created by hand.
    """
    if not job or not cronjob:
        return None, None
    prefix, dash, suffix = job.rpartition("-")
    if not (dash and prefix == cronjob and suffix.isascii() and suffix.isdigit()):
        return None, job
    if not _MINUTES.fullmatch(suffix):
        raise ConfigError(
            f"RUNNER_JOB_NAME {job!r}: {suffix!r} is not a scheduled time in minutes since "
            "the epoch"
        )
    try:
        return check_storable(EPOCH + timedelta(minutes=int(suffix))), None
    except (OverflowError, UsageError):
        raise ConfigError(
            f"RUNNER_JOB_NAME {job!r}: {suffix} minutes since the epoch is outside the range "
            "the warehouse stores (1900 to 2299)"
        ) from None
