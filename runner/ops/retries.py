"""A count of transient errors retried in this process, for the runs' ``retries`` metric.

The warehouse client and the HTTP source note each retry here; a run reports the
difference between the count at its start and at its end.  The count is per process:
runs of one process that overlap (a local backfill's parallel windows) share it.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_count = 0


def note_retry() -> None:
    """One transient error is being retried."""
    global _count  # noqa: PLW0603 - one counter per process, by design
    with _lock:
        _count += 1


def retries_so_far() -> int:
    """Retries noted by this process since it started."""
    with _lock:
        return _count
