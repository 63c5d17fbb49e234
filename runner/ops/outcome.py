"""A finished run as plain data: what metrics and alerts are made from.

Kept apart from the run service's own result type so the sinks below it (metrics,
webhook) depend on nothing above the infrastructure layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

#: Triggers as metrics label them: the windows a scheduled run catches up belong to the
#: schedule (they are what keeps it whole), every other trigger is itself.
_METRIC_TRIGGERS = {"catchup": "schedule"}


def metric_trigger(trigger: str) -> str:
    """The ``trigger`` label of a run recorded with ``trigger``."""
    return _METRIC_TRIGGERS.get(trigger, trigger)


@dataclass(frozen=True)
class StepCounts:
    """What one node of the run did."""

    rows_extracted: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    bytes_loaded: int = 0


@dataclass(frozen=True)
class RunOutcome:
    """One finished run: who, which window, how it ended, what it moved."""

    pipeline: str
    run_id: str
    trigger: str
    status: str  # succeeded, failed or cancelled
    finished_at: datetime
    duration_seconds: float
    window_start: datetime | None = None
    window_end: datetime | None = None
    exit_code: int = 0
    error_class: str = ""
    error: str = ""
    steps: dict[str, StepCounts] = field(default_factory=dict)
    #: Transient errors retried during the run (None: not known, e.g. read from the history)
    retries: int | None = None
    #: Longest gap between two fires of the pipeline's schedule (None: unscheduled)
    schedule_interval_seconds: float | None = None

    @property
    def failed(self) -> bool:
        """Whether the run failed (a cancelled run was stopped, it did not fail)."""
        return self.status == "failed"
