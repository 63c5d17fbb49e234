"""Kubernetes Lease locks: exclusion across pods and nodes, with a TTL for dead holders.

A ``coordination.k8s.io/v1`` Lease per lock.  Every write is a compare-and-swap on the
``resourceVersion`` the writer last saw, so of two racing pods exactly one wins.  A holder
renews ``renewTime`` every ``ttl/3`` from a daemon thread; a Lease whose ``renewTime`` is
older than its ``leaseDurationSeconds`` belongs to a dead (or partitioned) holder and is
taken over, counting ``leaseTransitions``.  A lease held under our own identity by another
lock object or an earlier incarnation is *not* ours: identities are often shared (pid 1 in
every container), so only the object that wrote ``acquireTime`` renews or deletes it.
Release deletes the Lease with uid/resourceVersion preconditions, so per-window locks do
not pile up in etcd.  The service account needs get, create, update and delete on leases.

``kubernetes`` is imported only inside these code paths: it is heavy, and file locks and
``import runner`` must not pay for it.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from runner.errors import AlreadyRunningError, ConfigError, NotReadyError, RunnerError
from runner.kube.client import SERVICE_ACCOUNT_NAMESPACE, build_api_client, pod_namespace
from runner.log import get_logger
from runner.state.locks.base import Holder, Lock, check_wait, lock_key

if TYPE_CHECKING:
    from collections.abc import Callable

    from kubernetes.client import CoordinationV1Api, V1Lease, V1ObjectMeta
    from kubernetes.client.exceptions import ApiException

    from runner.settings import Settings

T = TypeVar("T")

RBAC_VERBS = "get, create, update and delete"
MANAGED_BY_LABEL = ("app.kubernetes.io/managed-by", "pipeline-runner")
LOCK_NAME_ANNOTATION = "pipeline-runner/lock-name"
CONFLICT_RETRIES = 5
BACKOFF_FIRST = 0.05
BACKOFF_CAP = 2.0


class _MissingError(Exception):
    """HTTP 404: the Lease does not exist (any more)."""


class _ConflictError(Exception):
    """HTTP 409: someone else wrote first; re-read and decide again."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _micro(moment: datetime) -> datetime:
    """A MicroTime the API server will parse.

    The client renders datetimes with ``isoformat()``, which drops ``.000000`` on a whole
    second, and the server parses MicroTime with a fixed six-digit layout, rejecting that
    with HTTP 400.  Nudging such a moment by one microsecond keeps the digits.
    """
    moment = _aware(moment)
    return moment.replace(microsecond=1) if moment.microsecond == 0 else moment


def _aware(moment: datetime) -> datetime:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _build_api() -> CoordinationV1Api:
    from kubernetes import client

    return client.CoordinationV1Api(build_api_client("lock backend 'lease'"))


class LeaseLock(Lock):
    """A lock held as a Kubernetes Lease; ``lost`` is set if a renewal finds it taken."""

    def __init__(
        self,
        name: str,
        *,
        api: CoordinationV1Api,
        namespace: str,
        identity: str,
        ttl_seconds: float = 60.0,
        clock: Callable[[], datetime] | None = None,
        request_timeout: float | None = None,
    ) -> None:
        if not namespace:
            raise ConfigError("lease lock needs a namespace (RUNNER_LEASE_NAMESPACE)")
        if not identity:
            raise ConfigError("lease lock needs a holder identity (RUNNER_IDENTITY)")
        if not (math.isfinite(ttl_seconds) and ttl_seconds > 0):
            raise ConfigError(f"RUNNER_LOCK_TTL_SECONDS must be > 0, not {ttl_seconds}")
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.ttl_seconds = float(ttl_seconds)
        self.lease_name = lock_key(name)
        self.lost = threading.Event()
        self._api = api
        self._duration = max(1, math.ceil(ttl_seconds))
        self._renew_every = self.ttl_seconds / 3
        self._timeout = request_timeout or max(1.0, min(10.0, self._renew_every))
        self._clock = clock or _utc_now
        self._mutex = threading.RLock()
        self._lease: V1Lease | None = None  # as we last wrote it: CAS base for renew/release
        self._held: Holder | None = None
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
        """Create or take over the Lease, retrying with jittered backoff until the deadline."""
        wait = check_wait(wait_seconds)
        deadline = time.monotonic() + wait
        delay = BACKOFF_FIRST
        with self._mutex:
            if self._held is not None:
                raise RuntimeError(f"{self!r} is already held by this object")
            while (blocker := self._try_acquire()) is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    waited = f" after waiting {wait:g}s" if wait else ""
                    raise AlreadyRunningError(
                        f"lock {self.name!r} is {blocker.describe()} "
                        f"(Lease {self.namespace}/{self.lease_name}){waited}"
                    )
                if delay == BACKOFF_FIRST:
                    self._log.info("lock busy; waiting", holder=blocker.identity, wait=wait)
                time.sleep(min(remaining, delay * random.uniform(0.5, 1.0)))  # noqa: S311
                delay = min(BACKOFF_CAP, delay * 2)
            self.lost.clear()
            self._stop = threading.Event()
            self._renewer = threading.Thread(
                target=self._renew_loop,
                args=(self._stop,),
                name=f"lease-renew:{self.lease_name}",
                daemon=True,
            )
            self._renewer.start()
        self._log.debug("lock acquired", ttl=self.ttl_seconds)

    def release(self) -> None:
        """Stop renewing, then delete the Lease if (and only if) it is still ours."""
        self._stop.set()
        renewer = self._renewer
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join(timeout=2 * self._timeout + 1)
        with self._mutex:
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
        """The Lease's live holder, or ``None`` when absent, released or expired."""
        lease = self._read()
        return None if lease is None else self._live_holder(lease, _aware(self._clock()))

    # -- acquisition -------------------------------------------------------------------

    def _try_acquire(self) -> Holder | None:
        """One round of read-then-CAS; ``None`` when we hold it, else who blocks us."""
        now = _micro(self._clock())
        for _ in range(CONFLICT_RETRIES):
            now = _micro(self._clock())
            lease = self._read()
            try:
                if lease is None:
                    body = self._body(None, acquired=now, renewed=now, transitions=0)
                    self._lease = self._call("create", self._api.create_namespaced_lease, body)
                else:
                    if (blocker := self._live_holder(lease, now)) is not None:
                        return blocker
                    spec = lease.spec
                    transitions = (spec.lease_transitions or 0) if spec else 0
                    if not spec or spec.holder_identity != self.identity:  # as client-go counts
                        transitions += 1
                    body = self._body(lease.metadata, now, now, transitions)
                    self._lease = self._call("update", self._api.replace_namespaced_lease, body)
            except (_ConflictError, _MissingError):
                continue  # someone wrote between our read and our write: look again
            self._held = Holder(self.identity, now, now, now + timedelta(seconds=self._duration))
            return None
        lease = self._read()  # lost every race: report whoever keeps winning
        blocker = self._live_holder(lease, now) if lease is not None else None
        return blocker or Holder("unknown (contended)", now)

    def _live_holder(self, lease: V1Lease, now: datetime) -> Holder | None:
        spec = lease.spec
        if spec is None or not spec.holder_identity:
            return None
        renewed = spec.renew_time or spec.acquire_time
        if renewed is None:
            return None  # never renewed: nothing proves the holder alive
        renewed = _aware(renewed)
        expires = renewed + timedelta(seconds=spec.lease_duration_seconds or self._duration)
        if expires <= now:
            return None
        acquired = _aware(spec.acquire_time) if spec.acquire_time else renewed
        return Holder(spec.holder_identity, acquired, renewed, expires)

    def _is_ours(self, lease: V1Lease, held: Holder) -> bool:
        spec = lease.spec
        return (
            spec is not None
            and spec.holder_identity == self.identity
            and spec.acquire_time is not None
            and _aware(spec.acquire_time) == held.acquired_at
        )

    def _body(
        self, metadata: V1ObjectMeta | None, acquired: datetime, renewed: datetime, transitions: int
    ) -> V1Lease:
        from kubernetes.client import V1Lease, V1LeaseSpec, V1ObjectMeta

        if metadata is None:
            label, value = MANAGED_BY_LABEL
            metadata = V1ObjectMeta(
                name=self.lease_name,
                namespace=self.namespace,
                labels={label: value},
                annotations={LOCK_NAME_ANNOTATION: self.name},
            )
        spec = V1LeaseSpec(
            holder_identity=self.identity,
            acquire_time=acquired,
            renew_time=renewed,
            lease_duration_seconds=self._duration,
            lease_transitions=transitions,
        )
        return V1Lease(
            api_version="coordination.k8s.io/v1", kind="Lease", metadata=metadata, spec=spec
        )

    # -- renewal -----------------------------------------------------------------------

    def _renew_loop(self, stop: threading.Event) -> None:
        while not stop.wait(self._renew_every):
            with self._mutex:
                if stop.is_set():
                    return
                try:
                    still_ours = self._renew_once()
                except RunnerError as exc:
                    held = self._held
                    now = _aware(self._clock())
                    if held is not None and held.expires_at and now >= held.expires_at:
                        self._mark_lost(f"could not renew it before it expired: {exc}")
                        return
                    self._log.warning("lease renewal failed; retrying", error=str(exc))
                    continue
                if not still_ours:
                    self._mark_lost("another holder took the lease over")
                    return

    def _renew_once(self) -> bool:
        lease, held = self._lease, self._held
        if lease is None or held is None:
            return False
        for _ in range(CONFLICT_RETRIES):
            now = _micro(self._clock())
            transitions = lease.spec.lease_transitions if lease.spec else None
            body = self._body(lease.metadata, held.acquired_at, now, transitions or 0)
            try:
                self._lease = self._call("update", self._api.replace_namespaced_lease, body)
            except _MissingError:
                return False
            except _ConflictError:
                fresh = self._read()
                if fresh is None or not self._is_ours(fresh, held):
                    return False
                lease = fresh
                continue
            self._held = replace(
                held, renewed_at=now, expires_at=now + timedelta(seconds=self._duration)
            )
            return True
        raise NotReadyError(f"Lease {self.namespace}/{self.lease_name} keeps changing under us")

    def _mark_lost(self, reason: str) -> None:
        self.lost.set()
        self._log.error("lock lost; the run holding it should stop", reason=reason)

    # -- release -----------------------------------------------------------------------

    def _delete(self, lease: V1Lease, held: Holder) -> None:
        from kubernetes.client import V1DeleteOptions, V1Preconditions

        for _ in range(CONFLICT_RETRIES):
            meta = lease.metadata
            options = V1DeleteOptions(
                preconditions=V1Preconditions(
                    uid=meta.uid if meta else None,
                    resource_version=meta.resource_version if meta else None,
                )
            )
            try:
                self._call("delete", self._api.delete_namespaced_lease, body=options)
            except _MissingError:
                self._log.warning("lease was already deleted by someone else")
                return
            except _ConflictError:
                fresh = self._read()
                if fresh is None:
                    return
                if not self._is_ours(fresh, held):
                    self._log.warning("lease was taken over before release; left alone")
                    return
                lease = fresh
                continue
            return
        raise NotReadyError(f"Lease {self.namespace}/{self.lease_name} keeps changing under us")

    # -- API plumbing ------------------------------------------------------------------

    def _read(self) -> V1Lease | None:
        try:
            return self._call("get", self._api.read_namespaced_lease)
        except _MissingError:
            return None

    def _call(self, verb: str, method: Callable[..., T], body: Any = None) -> T:
        """Call one Lease endpoint, turning HTTP failures into the framework's errors."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        kwargs: dict[str, Any] = {"_request_timeout": self._timeout}
        if verb == "create":
            args: tuple[Any, ...] = (self.namespace, body)
        else:
            args = (self.lease_name, self.namespace)
            if body is not None:
                kwargs["body"] = body
        try:
            return method(*args, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                raise _MissingError from exc
            if exc.status == 409:
                raise _ConflictError from exc
            raise self._api_error(verb, exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise NotReadyError(
                f"Kubernetes API {self._url} unreachable trying to {verb} Lease "
                f"{self.namespace}/{self.lease_name}: {type(exc).__name__}"
            ) from exc

    @property
    def _url(self) -> str:
        configuration = getattr(getattr(self._api, "api_client", None), "configuration", None)
        return str(getattr(configuration, "host", "(unknown)"))

    def _api_error(self, verb: str, exc: ApiException) -> RunnerError:
        status = exc.status or 0
        where = f"Lease {self.namespace}/{self.lease_name}"
        if status == 401:
            return ConfigError(
                f"Kubernetes API {self._url} rejected our credentials (HTTP 401) trying to "
                f"{verb} {where}: check the service account token or kubeconfig"
            )
        if status == 403:
            return ConfigError(
                f"RBAC: Kubernetes API {self._url} forbids verb '{verb}' on resource "
                f"leases.coordination.k8s.io in namespace {self.namespace} (HTTP 403); "
                f"the service account needs {RBAC_VERBS} on leases"
            )
        detail = _status_message(exc)
        if status in {0, 429} or status >= 500:
            return NotReadyError(
                f"Kubernetes API {self._url} failed to {verb} {where}: HTTP {status} {detail}"
            )
        return ConfigError(f"Kubernetes API {self._url} rejected {verb} of {where}: {detail}")


def _status_message(exc: ApiException) -> str:
    """The ``message`` of a ``kind: Status`` body, else the HTTP reason; on one line."""
    try:
        message = str(json.loads(exc.body or "")["message"])
    except (ValueError, KeyError, TypeError):
        message = str(exc.reason or "")
    return " ".join(message.split())
