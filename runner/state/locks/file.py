"""File locks for the embedded warehouse, where every runner shares one machine.

The lock is an ``flock`` on ``<dir>/<key>.lock`` taken through the ``filelock`` library.
The kernel drops an ``flock`` when the holding process dies, however it dies (SIGKILL,
OOM), so a dead holder never blocks anyone and file locks need no TTL or renewal.

``flock`` cannot say who holds a lock, so the holder writes its identity and start time
to a sidecar ``<dir>/<key>.holder.json`` right after acquiring (atomically, by rename);
a refused acquirer reads it to name the holder.  A sidecar left by a killed holder is
harmless: it is only read while the lock is actually held, and the next holder replaces
it.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import AlreadyRunningError, ConfigError
from runner.log import get_logger
from runner.state.locks.base import Holder, Lock, check_wait, lock_key

if TYPE_CHECKING:
    from filelock import BaseFileLock

POLL_SECONDS = 0.05


def _flock(path: Path) -> BaseFileLock:
    """A non-singleton, process-wide (not thread-local) flock on ``path``.

    ``thread_local=False`` lets any thread release what another acquired (a run's lock
    object is shared by its threads); ``is_singleton=False`` gives every lock object its
    own descriptor, so two objects on one path exclude each other even in one process
    (``flock`` conflicts between open file descriptions).  No soft-lock fallback: on a
    filesystem without ``flock`` a stale marker would outlive its holder, so fail instead.
    """
    from filelock import FileLock as LibFileLock

    return LibFileLock(
        path,
        thread_local=False,
        is_singleton=False,
        fallback_to_soft=False,
        poll_interval=POLL_SECONDS,
    )


class FileLock(Lock):
    """An exclusive ``flock`` under ``directory``; see the module docstring for why no TTL."""

    def __init__(self, name: str, directory: Path, *, identity: str) -> None:
        super().__init__(name)
        key = lock_key(name)
        self.identity = identity
        self.directory = directory
        self.path = directory / f"{key}.lock"
        self.holder_path = directory / f"{key}.holder.json"
        self._flock = _flock(self.path)
        self._mutex = threading.Lock()
        self._held: Holder | None = None
        self._log = get_logger(lock=name)

    def acquire(self, *, wait_seconds: float = 0.0) -> None:
        """Take the flock, polling every 50 ms for up to ``wait_seconds``."""
        from filelock import Timeout

        wait = check_wait(wait_seconds)
        with self._mutex:
            if self._held is not None:
                raise RuntimeError(f"{self!r} is already held by this object")
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._flock.acquire(timeout=0)
            except Timeout:
                if not wait:
                    raise self._refusal(wait) from None
                who = self._read_sidecar() or self._unknown_holder()
                self._log.info("lock busy; waiting", holder=who.identity, wait=wait)
                try:
                    self._flock.acquire(timeout=wait)
                except Timeout:
                    raise self._refusal(wait) from None
            except OSError as exc:
                raise ConfigError(
                    f"RUNNER_LOCK_DIR: cannot lock {self.path}: {exc.strerror or exc}"
                ) from exc
            held = Holder(identity=self.identity, acquired_at=datetime.now(UTC))
            try:
                self._write_sidecar(held)
            except OSError as exc:
                self._flock.release()
                raise ConfigError(
                    f"RUNNER_LOCK_DIR: cannot write {self.holder_path}: {exc.strerror}"
                ) from exc
            except BaseException:  # a stop signal: give the flock back before leaving
                self._flock.release()
                raise
            self._held = held
        self._log.debug("lock acquired", path=str(self.path))

    def release(self) -> None:
        """Drop the sidecar, then the flock (so a held lock always has its sidecar)."""
        with self._mutex:
            if self._held is None:
                return
            self._held = None
            try:
                self.holder_path.unlink(missing_ok=True)
            except OSError as exc:
                self._log.warning("cannot remove lock holder file", error=str(exc))
            try:
                self._flock.release()
            except (OSError, RuntimeError) as exc:
                self._log.warning("releasing the file lock failed", error=str(exc))
        self._log.debug("lock released", path=str(self.path))

    def holder(self) -> Holder | None:
        """Our own hold, else probe the flock without waiting and read the sidecar."""
        from filelock import Timeout

        with self._mutex:
            if self._held is not None:
                return self._held
        if not self.path.exists():
            return None
        probe = _flock(self.path)
        try:
            probe.acquire(timeout=0)
        except Timeout:
            return self._read_sidecar() or self._unknown_holder()
        probe.release()
        return None

    def _unknown_holder(self) -> Holder:
        """A holder without a sidecar (just starting, or not a runner): date it by the file."""
        try:
            since = datetime.fromtimestamp(self.path.stat().st_mtime, UTC)
        except OSError:
            since = datetime.now(UTC)
        return Holder(identity="unknown (no holder file)", acquired_at=since)

    def _refusal(self, wait: float) -> AlreadyRunningError:
        who = (self._read_sidecar() or self._unknown_holder()).describe()
        waited = f" after waiting {wait:g}s" if wait else ""
        return AlreadyRunningError(f"lock {self.name!r} is {who} (file {self.path}){waited}")

    def _write_sidecar(self, held: Holder) -> None:
        record = {
            "name": self.name,
            "identity": held.identity,
            "acquired_at": held.acquired_at.isoformat(),
            "pid": os.getpid(),
        }
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".holder-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(record, out)
            Path(tmp).replace(self.holder_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _read_sidecar(self) -> Holder | None:
        try:
            record = json.loads(self.holder_path.read_text(encoding="utf-8"))
            return Holder(
                identity=str(record["identity"]),
                acquired_at=datetime.fromisoformat(record["acquired_at"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
