"""One Lease object over the Kubernetes API: read, create, replace, delete, errors mapped.

Every request carries a timeout, so no lock operation hangs on a silent API server.  Answers
become the framework's errors here, once: 404 and 409 are :class:`LeaseMissingError` and
:class:`LeaseConflictError` (the lock re-reads and decides again), 401/403 a
:class:`~runner.errors.ConfigError` naming the credentials or the RBAC verb, 429, 5xx, a
refused connection or a timeout a :class:`~runner.errors.NotReadyError` (exit 4, retried by
the Job).

``kubernetes`` is imported only inside these functions: it is heavy, and file locks and
``import runner`` must not pay for it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from runner.errors import ConfigError, NotReadyError, RunnerError

if TYPE_CHECKING:
    from collections.abc import Callable

    from kubernetes.client import CoordinationV1Api, V1Lease, V1ObjectMeta
    from kubernetes.client.exceptions import ApiException

T = TypeVar("T")

RBAC_VERBS = "get, create, update and delete"
MANAGED_BY_LABEL = ("app.kubernetes.io/managed-by", "pipeline-runner")
LOCK_NAME_ANNOTATION = "pipeline-runner/lock-name"


class LeaseMissingError(Exception):
    """HTTP 404: the Lease does not exist (any more)."""


class LeaseConflictError(Exception):
    """HTTP 409: someone else wrote first; re-read and decide again."""


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
        """Call one Lease endpoint, turning HTTP failures into the framework's errors."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        seconds = self.timeout if timeout is None else timeout
        kwargs: dict[str, Any] = {"_request_timeout": seconds}
        if verb == "create":
            args: tuple[Any, ...] = (self.namespace, body)
        else:
            args = (self.name, self.namespace)
            if body is not None:
                kwargs["body"] = body
        try:
            return method(*args, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                raise LeaseMissingError from exc
            if exc.status == 409:
                raise LeaseConflictError from exc
            raise self._api_error(verb, exc) from exc
        except urllib3.exceptions.NewConnectionError as exc:  # (a subclass of TimeoutError)
            raise NotReadyError(
                f"Kubernetes API {self.url} unreachable trying to {verb} {self.where}: "
                f"{type(exc).__name__}"
            ) from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise NotReadyError(
                f"Kubernetes API {self.url} did not answer within {seconds:g}s trying to "
                f"{verb} {self.where}"
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise NotReadyError(
                f"Kubernetes API {self.url} unreachable trying to {verb} {self.where}: "
                f"{type(exc).__name__}"
            ) from exc

    @property
    def url(self) -> str:
        """The API server's address, for messages."""
        configuration = getattr(getattr(self.api, "api_client", None), "configuration", None)
        return str(getattr(configuration, "host", "(unknown)"))

    def _api_error(self, verb: str, exc: ApiException) -> RunnerError:
        status = exc.status or 0
        if status == 401:
            return ConfigError(
                f"Kubernetes API {self.url} rejected our credentials (HTTP 401) trying to "
                f"{verb} {self.where}: check the service account token or kubeconfig"
            )
        if status == 403:
            return ConfigError(
                f"RBAC: Kubernetes API {self.url} forbids verb '{verb}' on resource "
                f"leases.coordination.k8s.io in namespace {self.namespace} (HTTP 403); "
                f"the service account needs {RBAC_VERBS} on leases"
            )
        detail = _status_message(exc)
        if status in {0, 429} or status >= 500:
            return NotReadyError(
                f"Kubernetes API {self.url} failed to {verb} {self.where}: HTTP {status} {detail}"
            )
        return ConfigError(f"Kubernetes API {self.url} rejected {verb} of {self.where}: {detail}")


def _status_message(exc: ApiException) -> str:
    """The ``message`` of a ``kind: Status`` body, else the HTTP reason; on one line."""
    try:
        message = str(json.loads(exc.body or "")["message"])
    except (ValueError, KeyError, TypeError):
        message = str(exc.reason or "")
    return " ".join(message.split())
