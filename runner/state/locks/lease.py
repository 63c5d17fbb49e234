"""Kubernetes Lease locks: exclusion across pods and nodes, with a TTL for dead holders.

A ``coordination.k8s.io/v1`` Lease per lock.  Every write is a compare-and-swap on the
``resourceVersion`` the writer last saw, so of two racing pods exactly one wins.

Expiry is judged on this process's own monotonic clock, never on the holder's wall clock
(client-go's leader election does the same): pods' clocks may be a minute apart, so a
``renewTime`` that looks old may come from a live holder whose clock is behind, and one
that looks fresh from a dead holder whose clock is ahead.  A contender remembers the
Lease's record (holder, times, transitions) and the local moment it first saw that record;
the holder is gone once the record has stayed unchanged for ``leaseDurationSeconds`` as
measured here (:mod:`runner.state.locks.lease_watch`).  A live holder renews every ``ttl/3``,
which changes the record and restarts the count.  The holder in turn measures its own hold
from the moment it *sent* its last successful write, and stops renewing and gives up
(``lost``, so the run stops between batches) ``2·ttl/3`` after it, a third of the TTL
before any contender can see it expire.

A process meets each Lease afresh (``runner run`` is a new process every time), so a
refusal cannot wait for proof: a Lease whose holder's own clock says it was renewed within
its duration is taken as held at once (exit 5).  One whose holder's clock says it expired is
not believed either: the contender watches it, even past its own ``wait_seconds``, until it
changes (held: refused) or stays unchanged for a whole duration (taken over).

A Lease held under our own identity by another lock object or an earlier incarnation is
*not* ours: identities are often shared (pid 1 in every container), so only the object that
wrote ``acquireTime`` renews or deletes it.  Release deletes the Lease with uid and
resourceVersion preconditions, so per-window locks do not pile up in etcd; a stop signal
waits for that delete (``runner.signals.shielded``), and one that cuts an acquire short
deletes what that acquire may have written, so no Lease is left to linger for its TTL.
The service account needs get, create, update and delete on leases.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from runner.errors import AlreadyRunningError, ConfigError, NotReadyError, RunnerError
from runner.kube.client import SERVICE_ACCOUNT_NAMESPACE, build_api_client, pod_namespace
from runner.log import get_logger
from runner.signals import shielded
from runner.state.locks.base import Holder, Lock, check_wait, lock_key
from runner.state.locks.lease_api import (
    LeaseApi,
    LeaseConflictError,
    LeaseMissingError,
    aware,
    micro_time,
)
from runner.state.locks.lease_watch import Blocked, LeaseWatch

if TYPE_CHECKING:
    from collections.abc import Callable

    from kubernetes.client import CoordinationV1Api, V1Lease

    from runner.settings import Settings

CONFLICT_RETRIES = 5
BACKOFF_FIRST = 0.05
BACKOFF_CAP = 2.0
RENEW_RETRY_SECONDS = 2.0  # after a failed renewal, try again this soon (at most ttl/12)
GIVE_UP_FRACTION = 2 / 3  # of the TTL, after the last successful write was sent
EXPIRY_SLACK = 0.01  # wake just after a watched Lease expires here
MIN_REQUEST_TIMEOUT = 0.05


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _build_api() -> CoordinationV1Api:
    from kubernetes import client

    # No urllib3 retries: each would get a full request timeout, and a renewal that
    # outlives the moment its holder gives up defeats the margin before expiry.
    return client.CoordinationV1Api(build_api_client("lock backend 'lease'", retries=False))


class LeaseLock(Lock):
    """A lock held as a Kubernetes Lease; it is ``lost`` when not renewed in time or taken over."""

    def __init__(
        self,
        name: str,
        *,
        api: CoordinationV1Api,
        namespace: str,
        identity: str,
        ttl_seconds: float = 60.0,
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] | None = None,
        request_timeout: float | None = None,
    ) -> None:
        if not namespace:
            raise ConfigError("lease lock needs a namespace (RUNNER_LEASE_NAMESPACE)")
        if not identity:
            raise ConfigError("lease lock needs a holder identity (RUNNER_IDENTITY)")
        if not (math.isfinite(ttl_seconds) and ttl_seconds > 0):
            raise ConfigError(f"RUNNER_LOCK_TTL_SECONDS must be > 0, not {ttl_seconds}")
        super().__init__(name)
        self.namespace = namespace
        self.identity = identity
        self.ttl_seconds = float(ttl_seconds)
        self.lease_name = lock_key(name)
        self._duration = max(1, math.ceil(ttl_seconds))
        self._renew_every = self.ttl_seconds / 3
        self._give_up_after = self.ttl_seconds * GIVE_UP_FRACTION
        timeout = request_timeout or max(1.0, min(10.0, self._renew_every))
        self._api = LeaseApi(api, namespace, self.lease_name, timeout)
        self._clock = clock or _utc_now
        self._mono = monotonic or time.monotonic
        self._mutex = threading.RLock()
        self._lease: V1Lease | None = None  # as we last wrote it: CAS base for renew/release
        self._held: Holder | None = None
        self._give_up_at = 0.0  # local monotonic time the holder stops believing it holds
        self._writing: datetime | None = None  # acquireTime of an acquiring write in flight
        self._watch = LeaseWatch(self._duration, self._clock)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._log = get_logger(lock=name, lease=f"{namespace}/{self.lease_name}")

    @classmethod
    def from_settings(cls, settings: Settings, name: str) -> LeaseLock:
        """Namespace from settings or the pod's service account; client from the environment."""
        namespace = settings.lease_namespace or pod_namespace()
        if not namespace:
            raise ConfigError(
                f"lock backend 'lease' needs a namespace: set RUNNER_LEASE_NAMESPACE "
                f"(no {SERVICE_ACCOUNT_NAMESPACE} outside a pod)"
            )
        return cls(
            name,
            api=_build_api(),
            namespace=namespace,
            identity=settings.holder_identity,
            ttl_seconds=settings.lock_ttl_seconds,
        )

    # -- the Lock interface ------------------------------------------------------------

    def acquire(self, *, wait_seconds: float = 0.0) -> None:
        """Create or take over the Lease, retrying with jittered backoff until the deadline.

        A Lease that only *looks* expired (by its holder's clock) is watched for up to one
        duration even beyond ``wait_seconds``; see the module docstring.
        """
        wait = check_wait(wait_seconds)
        with self._mutex:
            if self._held is not None:
                raise RuntimeError(f"{self!r} is already held by this object")
            try:
                self._take(self._mono() + wait, wait)
                self._start_renewing()
            except AlreadyRunningError:
                raise
            except BaseException:  # a stop signal or an API failure mid-write
                self._abandon()
                raise
        self._log.debug("lock acquired", ttl=self.ttl_seconds)

    def release(self) -> None:
        """Stop renewing, then delete the Lease if (and only if) it is still ours."""
        self._stop.set()
        renewer = self._renewer
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join(timeout=2 * self._api.timeout + 1)
        with self._mutex, shielded():
            held, lease = self._held, self._lease
            self._held = self._lease = self._renewer = None
            if held is None or lease is None:
                return
            if self.lost.is_set():
                self._log.warning("releasing a lock that was already lost; nothing to delete")
                return
            try:
                self._delete(lease, held)
            except RunnerError as exc:
                self._log.error(
                    "could not delete the lease; it expires by itself",
                    error=str(exc),
                    expires_at=str(held.expires_at),
                )
        self._log.debug("lock released")

    def holder(self) -> Holder | None:
        """Our own hold, else the Lease's holder unless this process saw it expire."""
        with self._mutex:
            if self._held is not None:
                return self._held
            lease = self._api.read()
            if lease is None:
                return None
            blocked = self._watch.blocked_by(lease, self._mono())
            return blocked.holder if blocked else None

    # -- acquisition -------------------------------------------------------------------

    def _take(self, deadline: float, wait: float) -> None:
        """Try until we hold the Lease, or refuse once past the deadline (or the watch)."""
        delay = BACKOFF_FIRST
        first: Blocked | None = None
        while (blocked := self._try_acquire()) is not None:
            if first is None:
                first = blocked
            now = self._mono()
            watching = blocked.looks_stale and blocked.record == first.record
            limit = max(deadline, blocked.expires) if watching else deadline
            if now >= limit:
                raise self._refusal(blocked.holder, wait)
            if blocked is first:
                self._log.info(
                    "lock busy; waiting",
                    holder=blocked.holder.identity,
                    wait=wait,
                    watching_seconds=round(limit - now, 3) if watching else None,
                )
            pause = min(
                limit - now,
                delay * random.uniform(0.5, 1.0),  # noqa: S311 - jitter, not secrets
                max(0.0, blocked.expires - now) + EXPIRY_SLACK,
            )
            time.sleep(pause)
            delay = min(BACKOFF_CAP, delay * 2)

    def _try_acquire(self) -> Blocked | None:
        """One round of read-then-CAS; ``None`` when we hold it, else what blocks us."""
        for _ in range(CONFLICT_RETRIES):
            lease = self._api.read()
            if lease is not None and (blocked := self._watch.blocked_by(lease, self._mono())):
                return blocked
            now = micro_time(self._clock())
            sent = self._mono()
            self._writing = now
            try:
                if lease is None:
                    body = self._api.body(
                        None, self.name, self.identity, now, now, self._duration, 0
                    )
                    written = self._api.create(body)
                else:
                    spec = lease.spec
                    transitions = (spec.lease_transitions or 0) if spec else 0
                    if not spec or spec.holder_identity != self.identity:  # as client-go counts
                        transitions += 1
                    body = self._api.body(
                        lease.metadata, self.name, self.identity, now, now, self._duration,
                        transitions,
                    )  # fmt: skip
                    written = self._api.replace(body)
            except (LeaseConflictError, LeaseMissingError):
                self._writing = None
                continue  # someone wrote between our read and our write: look again
            self._lease = written
            self._held = Holder(self.identity, now, now, now + timedelta(seconds=self._duration))
            self._give_up_at = sent + self._give_up_after
            self._writing = None
            self._watch.forget()
            return None
        lease = self._api.read()  # lost every race: report whoever keeps winning
        seen = self._mono()
        blocked = self._watch.blocked_by(lease, seen) if lease is not None else None
        unknown = Holder("unknown (contended)", micro_time(self._clock()))
        return blocked or Blocked(unknown, (), seen, looks_stale=False)

    def _refusal(self, holder: Holder, wait: float) -> AlreadyRunningError:
        waited = f" after waiting {wait:g}s" if wait else ""
        return AlreadyRunningError(
            f"lock {self.name!r} is {holder.describe()} "
            f"(Lease {self.namespace}/{self.lease_name}){waited}"
        )

    def _is_ours(self, lease: V1Lease, acquired_at: datetime) -> bool:
        spec = lease.spec
        return (
            spec is not None
            and spec.holder_identity == self.identity
            and spec.acquire_time is not None
            and aware(spec.acquire_time) == acquired_at
        )

    def _abandon(self) -> None:
        """A stop signal cut acquire() short: delete whatever it may have written."""
        self._stop.set()
        attempt = self._held.acquired_at if self._held else self._writing
        self._held = self._lease = self._writing = self._renewer = None
        if attempt is None:
            return
        with shielded():
            try:
                lease = self._api.read()
                if lease is not None and self._is_ours(lease, attempt):
                    self._delete(lease, Holder(self.identity, attempt))
            except RunnerError as exc:
                self._log.error("could not delete the lease; it expires by itself", error=str(exc))

    # -- renewal -----------------------------------------------------------------------

    def _start_renewing(self) -> None:
        self.lost.clear()
        self._stop = threading.Event()
        self._renewer = threading.Thread(
            target=self._renew_loop,
            args=(self._stop,),
            name=f"lease-renew:{self.lease_name}",
            daemon=True,
        )
        self._renewer.start()

    def _renew_loop(self, stop: threading.Event) -> None:
        pause = self._renew_every
        while not stop.wait(max(0.0, min(pause, self._give_up_at - self._mono()))):
            with self._mutex:
                if stop.is_set():
                    return
                if self._mono() >= self._give_up_at:
                    self._mark_lost(
                        f"not renewed for {self._give_up_after:g}s; given up before it expires"
                    )
                    return
                try:
                    still_ours = self._renew_once()
                except RunnerError as exc:
                    left = self._give_up_at - self._mono()
                    self._log.warning(
                        "lease renewal failed; retrying", error=str(exc), gives_up_in=round(left, 1)
                    )
                    pause = min(RENEW_RETRY_SECONDS, self._renew_every / 4)
                    continue
                if not still_ours:
                    self._mark_lost("another holder took the lease over")
                    return
                pause = self._renew_every

    def _request_timeout(self) -> float:
        """The API timeout, cut so that no renewal outlives the moment we give up."""
        left = self._give_up_at - self._mono()
        return max(MIN_REQUEST_TIMEOUT, min(self._api.timeout, left))

    def _renew_once(self) -> bool:
        lease, held = self._lease, self._held
        if lease is None or held is None:
            return False
        for _ in range(CONFLICT_RETRIES):
            if self._mono() >= self._give_up_at:
                raise NotReadyError(f"{self._api.where} could not be renewed in time")
            now = micro_time(self._clock())
            sent = self._mono()
            transitions = (lease.spec.lease_transitions if lease.spec else None) or 0
            body = self._api.body(
                lease.metadata, self.name, self.identity, held.acquired_at, now, self._duration,
                transitions,
            )  # fmt: skip
            try:
                self._lease = self._api.replace(body, self._request_timeout())
            except LeaseMissingError:
                return False
            except LeaseConflictError:
                fresh = self._api.read(self._request_timeout())
                if fresh is None or not self._is_ours(fresh, held.acquired_at):
                    return False
                lease = fresh
                continue
            self._held = replace(
                held, renewed_at=now, expires_at=now + timedelta(seconds=self._duration)
            )
            self._give_up_at = sent + self._give_up_after
            return True
        raise NotReadyError(f"{self._api.where} keeps changing under us")

    def _mark_lost(self, reason: str) -> None:
        self._log.error("lock lost; the run holding it should stop", reason=reason)
        self._hold_lost()

    # -- release -----------------------------------------------------------------------

    def _delete(self, lease: V1Lease, held: Holder) -> None:
        for _ in range(CONFLICT_RETRIES):
            try:
                self._api.delete(lease)
            except LeaseMissingError:
                self._log.warning("lease was already deleted by someone else")
                return
            except LeaseConflictError:
                fresh = self._api.read()
                if fresh is None:
                    return
                if not self._is_ours(fresh, held.acquired_at):
                    self._log.warning("lease was taken over before release; left alone")
                    return
                lease = fresh
                continue
            return
        raise NotReadyError(f"{self._api.where} keeps changing under us")
