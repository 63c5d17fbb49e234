"""What every lock backend promises, and the helpers they share.

A lock guards work that must not run twice at once: ``runner migrate`` (one migrator per
database) and pipeline runs (one per pipeline or window, including Jobs the CronJob
controller never heard of).  Refusal is an :class:`AlreadyRunningError` (exit 5) whose one
line says who holds the lock and since when, so an operator can decide whether to wait.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from runner.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Self

MAX_KEY_LENGTH = 63
_UNSAFE = re.compile(r"[^a-z0-9-]")
_SUFFIX_HEX = 12


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: identity, when it took it, and (Leases) when it renewed / expires."""

    identity: str
    acquired_at: datetime
    renewed_at: datetime | None = None
    expires_at: datetime | None = None

    def describe(self) -> str:
        """One phrase for messages: ``held by X since T[, expires at E]``."""
        text = f"held by {self.identity} since {_when(self.acquired_at)}"
        if self.expires_at is not None:
            text += f", expires at {_when(self.expires_at)} unless renewed"
        return text


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def lock_key(name: str) -> str:
    """Map a free-text lock name to a file name and Lease name (DNS-1123, <= 63 chars).

    Lower-cases, replaces anything but ``[a-z0-9-]`` by ``-`` and trims ``-`` at the ends;
    when that changed or truncated the name, appends a sha256 prefix of the *original*
    name, so ``Run:a`` and ``run:a`` (or two long names sharing a prefix) never collide.
    """
    if not name or not name.strip():
        raise ConfigError("lock name must not be empty")
    key = _UNSAFE.sub("-", name.lower()).strip("-")
    if key == name and len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(name.encode()).hexdigest()[:_SUFFIX_HEX]
    base = key[: MAX_KEY_LENGTH - _SUFFIX_HEX - 1].rstrip("-")
    return f"{base}-{digest}" if base else digest


def check_wait(wait_seconds: float) -> float:
    """Waits are finite and not negative, so every acquire loop is bounded."""
    if not (math.isfinite(wait_seconds) and wait_seconds >= 0):
        raise ConfigError(f"lock wait must be a finite number of seconds >= 0, not {wait_seconds}")
    return float(wait_seconds)


class Lock(ABC):
    """A named, exclusive, non-reentrant lock shared between processes (and threads).

    Two lock objects with the same name exclude each other even inside one process; one
    object must be released before it is acquired again.

    A hold may end by itself before :meth:`release`: then :attr:`lost` is set and every
    :meth:`on_lost` callback runs once, so the work it guards stops.  Only a backend with
    a TTL can lose a hold (a Lease not renewed in time, or taken over); a ``flock`` is held
    until it is released or its process dies, so a file lock is never lost.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        #: Set when the hold ended by itself; cleared when the lock is acquired again.
        self.lost = threading.Event()
        self._lost_callbacks: list[Callable[[], None]] = []
        self._lost_mutex = threading.Lock()

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once when the hold ends by itself (at once if it already has).

        It runs on the thread that noticed (a Lease's renewing thread): keep it short.
        """
        with self._lost_mutex:
            self._lost_callbacks.append(callback)
            already = self.lost.is_set()
        if already:
            callback()

    def _hold_lost(self) -> None:
        """For backends: the hold has ended by itself; tell every watcher once."""
        with self._lost_mutex:
            if self.lost.is_set():
                return
            self.lost.set()
            callbacks = list(self._lost_callbacks)
        for callback in callbacks:
            callback()

    @abstractmethod
    def acquire(self, *, wait_seconds: float = 0.0) -> None:
        """Take the lock, retrying with bounded backoff for up to ``wait_seconds``.

        Raises :class:`~runner.errors.AlreadyRunningError` naming the holder when it is
        still held at the deadline.
        """

    @abstractmethod
    def release(self) -> None:
        """Give the lock back; idempotent, and only logs a warning if it was lost meanwhile."""

    @abstractmethod
    def holder(self) -> Holder | None:
        """Who holds the lock now (``None`` when nobody does)."""

    def __enter__(self) -> Self:
        self.acquire(wait_seconds=0.0)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class NullLock(Lock):
    """Backend ``none``: always succeeds, excludes nothing (tests, single-user setups)."""

    def acquire(self, *, wait_seconds: float = 0.0) -> None:
        """Succeed at once."""
        check_wait(wait_seconds)

    def release(self) -> None:
        """Nothing to give back."""

    def holder(self) -> Holder | None:
        """Nobody ever holds a null lock."""
        return None
