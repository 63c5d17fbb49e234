"""Whether a run recorded as ``running`` is still alive, proven where the lock backend allows.

With file locks (one machine) every run holds an ``flock`` on
``<RUNNER_LOCK_DIR>/runs/<run_id>.alive`` from before its record says ``running`` until
after its final record is written.  The kernel drops an ``flock`` when its process dies,
however it dies (SIGKILL, out of memory), so a liveness file whose lock can be taken
proves its run dead at once, instead of after ``RUNNER_STALE_AFTER_SECONDS`` without a
heartbeat.  The file is removed when the run's outcome is recorded, and kept otherwise as
the proof, until the run that marks the dead one failed removes it.

Runs under Lease or no locks, and runs whose file is absent (another machine, or a
version before this one), are judged by their heartbeat: alive while it is younger than
``RUNNER_STALE_AFTER_SECONDS``.

:func:`is_run_alive` is the question other code asks (``runner status``, backfill status,
stale-run marking, clean-up of a dead run's leftovers).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from runner.errors import ConfigError
from runner.settings import LockBackend
from runner.state.locks import effective_backend

if TYPE_CHECKING:
    from pathlib import Path

    from runner.settings import Settings
    from runner.state.runs import RunRecord

DIRECTORY = "runs"
SUFFIX = ".alive"
# Run ids come back from the warehouse: only ones that are safe file names are looked up.
_SAFE_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


@dataclass(frozen=True)
class Liveness:
    """The verdict on one run, and why (the reason is recorded for a dead run)."""

    alive: bool
    reason: str


def liveness_path(settings: Settings, run_id: str) -> Path | None:
    """Where the run's liveness file lives with file locks (``None``: no file is kept)."""
    if effective_backend(settings) != LockBackend.FILE or not _SAFE_RUN_ID.fullmatch(run_id):
        return None
    return settings.lock_path / DIRECTORY / f"{run_id}{SUFFIX}"


def run_liveness(settings: Settings, record: RunRecord, now: datetime | None = None) -> Liveness:
    """Whether ``record``'s run is alive: its liveness lock when it has one, else its heartbeat."""
    if record.status != "running":
        return Liveness(alive=False, reason=f"it ended: {record.status}")
    path = liveness_path(settings, record.run_id)
    held = _probe(path) if path is not None else None
    if held is True:
        return Liveness(alive=True, reason=f"its liveness lock {path} is held")
    if held is False:
        return Liveness(
            alive=False,
            reason=(
                f"the process died (killed, out of memory or crashed): its liveness lock {path} "
                f"is free; last heartbeat {record.heartbeat_at.isoformat()}"
            ),
        )
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=settings.stale_after_seconds)
    if record.heartbeat_at >= cutoff:
        return Liveness(alive=True, reason=f"heartbeat at {record.heartbeat_at.isoformat()}")
    return Liveness(
        alive=False,
        reason=(
            f"no heartbeat since {record.heartbeat_at.isoformat()}: the process died "
            "(killed, evicted or node lost)"
        ),
    )


def is_run_alive(settings: Settings, record: RunRecord) -> bool:
    """Whether the run of ``record`` is still running (False for a finished run)."""
    return run_liveness(settings, record).alive


def discard_proof(settings: Settings, run_id: str) -> None:
    """Remove a dead run's liveness file once its failure is recorded (kept while held)."""
    path = liveness_path(settings, run_id)
    if path is not None and _probe(path) is False:
        path.unlink(missing_ok=True)


class LivenessLock:
    """The liveness lock a run holds for its whole life (file locks only)."""

    def __init__(self, path: Path, identity: str) -> None:
        self.path = path
        self.identity = identity
        self._fd: int | None = None

    def acquire(self) -> None:
        """Create the file and lock it; a ConfigError names RUNNER_LOCK_DIR when that fails."""
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"RUNNER_LOCK_DIR: cannot create the run's liveness file {self.path}: "
                f"{exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            note = {"identity": self.identity, "pid": os.getpid()}
            os.write(fd, json.dumps(note).encode())
        except OSError as exc:
            os.close(fd)
            raise ConfigError(
                f"RUNNER_LOCK_DIR: cannot lock the run's liveness file {self.path}: "
                f"{exc.strerror or exc}"
            ) from None
        self._fd = fd

    def release(self, *, outcome_recorded: bool) -> None:
        """Drop the lock; remove the file only when the run's outcome is in the history.

        A run whose outcome could not be recorded leaves the free file behind as the proof
        that it is dead.
        """
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if outcome_recorded:
            self.path.unlink(missing_ok=True)  # a prober that still sees it free reads the outcome
        os.close(fd)


def _probe(path: Path) -> bool | None:
    """``True`` when the file's lock is held, ``False`` when free, ``None`` when unknown."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # never created by a look
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    else:
        return False
    finally:
        os.close(fd)  # also drops the probe's own lock
