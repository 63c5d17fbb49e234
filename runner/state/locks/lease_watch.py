"""How a contender decides that a Lease's holder is gone, on its own clock.

Pods' wall clocks may be a minute apart, so a Lease's ``renewTime`` is not believed
(client-go's leader election does the same): a contender remembers the Lease's record
(holder, times, transitions) and the local monotonic moment it first saw that record, and
the holder is gone once the record has stayed unchanged for ``leaseDurationSeconds`` as
measured here.  The holder's own timestamps only say whether the Lease *looks* stale,
which :mod:`runner.state.locks.lease` uses to decide whether to watch it or refuse at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from runner.state.locks.base import Holder
from runner.state.locks.lease_api import aware

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from kubernetes.client import V1Lease


@dataclass(frozen=True)
class _Seen:
    """A Lease record and the local monotonic moment this process first saw it."""

    record: tuple[Any, ...]
    at: float


@dataclass(frozen=True)
class Blocked:
    """Who holds the Lease, and when it expires as judged here."""

    holder: Holder
    record: tuple[Any, ...]
    expires: float  # local monotonic time
    looks_stale: bool  # by its holder's own clock; not believed without watching


def lease_record(lease: V1Lease) -> tuple[Any, ...]:
    """What a live holder changes on every renewal (client-go's observed record)."""
    spec, meta = lease.spec, lease.metadata
    return (
        meta.uid if meta else None,
        spec.holder_identity if spec else None,
        spec.acquire_time if spec else None,
        spec.renew_time if spec else None,
        spec.lease_duration_seconds if spec else None,
        spec.lease_transitions if spec else None,
    )


class LeaseWatch:
    """The record of one Lease as this process last saw it, and since when."""

    def __init__(self, default_duration: int, clock: Callable[[], datetime]) -> None:
        self._duration = default_duration
        self._clock = clock
        self._seen: _Seen | None = None

    def forget(self) -> None:
        """We hold the Lease now: the next look at it starts afresh."""
        self._seen = None

    def blocked_by(self, lease: V1Lease, seen_at: float) -> Blocked | None:
        """The holder of ``lease`` unless its record stayed unchanged for a duration here."""
        spec = lease.spec
        if spec is None or not spec.holder_identity:
            return None  # released (no holder): free
        record = lease_record(lease)
        if self._seen is None or self._seen.record != record:
            self._seen = _Seen(record, seen_at)
        duration = spec.lease_duration_seconds or self._duration
        expires = self._seen.at + duration
        if seen_at >= expires:
            return None  # unchanged for a whole duration as measured here: the holder is gone
        wall = aware(self._clock())
        stamp = spec.renew_time or spec.acquire_time
        renewed = aware(stamp) if stamp else None
        looks_stale = renewed is None or renewed + timedelta(seconds=duration) <= wall
        acquired = aware(spec.acquire_time) if spec.acquire_time else (renewed or wall)
        expires_at = wall + timedelta(seconds=expires - seen_at)
        return Blocked(
            Holder(spec.holder_identity, acquired, renewed, expires_at),
            record,
            expires,
            looks_stale,
        )
