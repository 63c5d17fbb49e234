"""One Lease object over the Kubernetes API: read, create, replace, delete, errors mapped.

Every request goes through :func:`runner.kube.api.call`, with this lock's timeout, so no lock
operation hangs on a silent API server, and answers become the framework's errors there:
404 and 409 are :data:`LeaseMissingError` and :data:`LeaseConflictError` (the lock re-reads
and decides again), 401/403 a :class:`~runner.errors.ConfigError` naming the credentials or
the RBAC verb, 429, 5xx, a refused connection or a timeout a
:class:`~runner.errors.NotReadyError` (exit 4, retried by the Job).

``kubernetes`` is imported only inside these functions: it is heavy, and file locks and
``import runner`` must not pay for it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from runner.kube.api import KubeConflictError, KubeNotFoundError, Target, call, host

if TYPE_CHECKING:
    from collections.abc import Callable

    from kubernetes.client import CoordinationV1Api, V1Lease, V1ObjectMeta

T = TypeVar("T")

RBAC_VERBS = "get, create, update and delete"
LEASE_RESOURCE = "leases.coordination.k8s.io"
LEASE_RBAC = f"the service account needs {RBAC_VERBS} on leases"
MANAGED_BY_LABEL = ("app.kubernetes.io/managed-by", "pipeline-runner")
LOCK_NAME_ANNOTATION = "pipeline-runner/lock-name"


#: HTTP 404: the Lease does not exist (any more).
LeaseMissingError = KubeNotFoundError
#: HTTP 409: someone else wrote first; re-read and decide again.
LeaseConflictError = KubeConflictError


def micro_time(moment: datetime) -> datetime:
    """A MicroTime the API server will parse.

    The client renders datetimes with ``isoformat()``, which drops ``.000000`` on a whole
    second, and the server parses MicroTime with a fixed six-digit layout, rejecting that
    with HTTP 400.  Nudging such a moment by one microsecond keeps the digits.
    """
    moment = aware(moment)
    return moment.replace(microsecond=1) if moment.microsecond == 0 else moment


def aware(moment: datetime) -> datetime:
    """``moment`` in UTC (a naive one is taken as UTC, as the client parses MicroTime)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


class LeaseApi:
    """The Lease ``namespace/name`` through ``api``, each request bounded by ``timeout``."""

    def __init__(self, api: CoordinationV1Api, namespace: str, name: str, timeout: float) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.timeout = timeout

    @property
    def where(self) -> str:
        """``Lease <namespace>/<name>`` for messages."""
        return f"Lease {self.namespace}/{self.name}"

    def read(self, timeout: float | None = None) -> V1Lease | None:
        """The Lease as stored, or ``None`` when there is none."""
        try:
            return self._call("get", self.api.read_namespaced_lease, timeout=timeout)
        except LeaseMissingError:
            return None

    def create(self, body: V1Lease, timeout: float | None = None) -> V1Lease:
        """Create the Lease; LeaseConflictError when it exists already."""
        return self._call("create", self.api.create_namespaced_lease, body, timeout=timeout)

    def replace(self, body: V1Lease, timeout: float | None = None) -> V1Lease:
        """Write the Lease if its resourceVersion is still ``body``'s (compare-and-swap)."""
        return self._call("update", self.api.replace_namespaced_lease, body, timeout=timeout)

    def delete(self, lease: V1Lease, timeout: float | None = None) -> None:
        """Delete the Lease if its uid and resourceVersion are still ``lease``'s."""
        from kubernetes.client import V1DeleteOptions, V1Preconditions

        meta = lease.metadata
        options = V1DeleteOptions(
            preconditions=V1Preconditions(
                uid=meta.uid if meta else None,
                resource_version=meta.resource_version if meta else None,
            )
        )
        self._call("delete", self.api.delete_namespaced_lease, options, timeout=timeout)

    def body(  # noqa: PLR0917 - the Lease's fields, in their order
        self,
        metadata: V1ObjectMeta | None,
        lock_name: str,
        identity: str,
        acquired: datetime,
        renewed: datetime,
        duration: int,
        transitions: int,
    ) -> V1Lease:
        """A Lease held by ``identity``; new metadata (labels, lock name) when ``None``."""
        from kubernetes.client import V1Lease, V1LeaseSpec, V1ObjectMeta

        if metadata is None:
            label, value = MANAGED_BY_LABEL
            metadata = V1ObjectMeta(
                name=self.name,
                namespace=self.namespace,
                labels={label: value},
                annotations={LOCK_NAME_ANNOTATION: lock_name},
            )
        spec = V1LeaseSpec(
            holder_identity=identity,
            acquire_time=acquired,
            renew_time=renewed,
            lease_duration_seconds=duration,
            lease_transitions=transitions,
        )
        return V1Lease(
            api_version="coordination.k8s.io/v1", kind="Lease", metadata=metadata, spec=spec
        )

    def _call(
        self, verb: str, method: Callable[..., T], body: Any = None, *, timeout: float | None
    ) -> T:
        """Call one Lease endpoint through the gateway (timeout, errors mapped there)."""
        seconds = self.timeout if timeout is None else timeout
        kwargs: dict[str, Any] = {}
        if verb == "create":
            args: tuple[Any, ...] = (self.namespace, body)
        else:
            args = (self.name, self.namespace)
            if body is not None:
                kwargs["body"] = body
        target = Target("Lease", LEASE_RESOURCE, self.namespace, self.name, LEASE_RBAC)
        return call(self.api, verb, target, method, *args, timeout=seconds, **kwargs)

    @property
    def url(self) -> str:
        """The API server's address, for messages."""
        return host(self.api)
