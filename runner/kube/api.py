"""Every call to the Kubernetes API goes through :func:`call`: one timeout, one error mapping.

The framework talks to the API for three things (Lease locks, reading a pipeline's CronJob,
creating a backfill Job, listing CronJobs for ``runner check``); each used to map the
client's exceptions its own way.  Here it is done once:

=====================  ==========================================================
answer                 framework error (exit code)
=====================  ==========================================================
404                    :class:`KubeNotFoundError` (3; callers refine or recover)
409                    :class:`KubeConflictError` (3; callers refine or recover)
401, 403               :class:`~runner.errors.ConfigError` naming credentials/RBAC (3)
other 4xx (400, 422)   :class:`~runner.errors.ConfigError` with the server's message (3)
429, 5xx, no status    :class:`~runner.errors.NotReadyError` (4, retried by the Job)
refused, no answer     :class:`~runner.errors.NotReadyError` (4)
=====================  ==========================================================

Every request carries ``_request_timeout`` (:data:`REQUEST_TIMEOUT_SECONDS` unless the
caller passes its own), so no command hangs on a silent API server.  ``kubernetes`` is
imported inside functions only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from runner.errors import ConfigError, NotReadyError, RunnerError

T = TypeVar("T")

#: Seconds one request may take (connect and read together) unless the caller says otherwise.
REQUEST_TIMEOUT_SECONDS = 30.0


class KubeNotFoundError(ConfigError):
    """HTTP 404: the object does not exist (any more)."""


class KubeConflictError(ConfigError):
    """HTTP 409: the object exists already, or someone else wrote it first."""


@dataclass(frozen=True)
class Target:
    """What a request is about, for its error messages.

    ``resource`` is the RBAC resource (``leases.coordination.k8s.io``); ``rbac`` says who
    needs which verbs and what grants them, appended to 401/403 messages.
    """

    kind: str
    resource: str
    namespace: str
    name: str | None
    rbac: str

    @property
    def where(self) -> str:
        """``CronJob etl/orders`` (or ``CronJobs in etl`` for a list)."""
        if self.name is None:
            return f"{self.kind}s in {self.namespace}"
        return f"{self.kind} {self.namespace}/{self.name}"


def request_timeout(seconds: float | None) -> float:
    """``seconds``, else the module's default as it is now (tests may lower it)."""
    return REQUEST_TIMEOUT_SECONDS if seconds is None else seconds


def call(
    api: Any,
    verb: str,
    target: Target,
    method: Callable[..., T],
    *args: Any,
    timeout: float | None = None,
    **kwargs: Any,
) -> T:
    """``method(*args, **kwargs)`` with a request timeout; failures as the framework's errors."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    seconds = request_timeout(timeout)
    url = host(api)
    try:
        return method(*args, _request_timeout=seconds, **kwargs)
    except ApiException as exc:
        raise api_error(url, verb, target, exc) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        # urllib3 wraps the last failure in MaxRetryError once its retries are spent
        cause = getattr(exc, "reason", None) or exc
        timed_out = isinstance(cause, urllib3.exceptions.TimeoutError)
        # NewConnectionError is a TimeoutError too, yet means "refused"
        if timed_out and not isinstance(cause, urllib3.exceptions.NewConnectionError):
            raise NotReadyError(
                f"Kubernetes API {url} did not answer within {seconds:g}s trying to "
                f"{verb} {target.where}"
            ) from exc
        raise NotReadyError(
            f"Kubernetes API {url} unreachable trying to {verb} {target.where}: "
            f"{type(exc).__name__}"
        ) from exc


def api_error(url: str, verb: str, target: Target, exc: Any) -> RunnerError:
    """The framework's error for an ``ApiException`` answering ``verb`` on ``target``."""
    status = int(exc.status or 0)
    detail = status_message(exc)
    if status == 404:
        return KubeNotFoundError(f"{target.where} not found (Kubernetes API {url}): {detail}")
    if status == 409:
        return KubeConflictError(f"Kubernetes API {url} refused to {verb} {target.where}: {detail}")
    if status == 401:
        return ConfigError(
            f"Kubernetes API {url} rejected our credentials (HTTP 401) trying to {verb} "
            f"{target.where}: check the service account token or kubeconfig; RBAC: {target.rbac}"
        )
    if status == 403:
        return ConfigError(
            f"RBAC: Kubernetes API {url} forbids verb '{verb}' on resource {target.resource} "
            f"in namespace {target.namespace} (HTTP 403, {target.where}); {target.rbac}"
        )
    if status in {0, 429} or status >= 500:
        return NotReadyError(
            f"Kubernetes API {url} failed to {verb} {target.where}: HTTP {status} {detail}"
        )
    return ConfigError(f"Kubernetes API {url} rejected {verb} of {target.where}: {detail}")


def host(api: Any) -> str:
    """The API server's address behind a ``*Api`` object, for messages."""
    configuration = getattr(getattr(api, "api_client", None), "configuration", None)
    return str(getattr(configuration, "host", "(unknown)"))


def status_message(exc: Any) -> str:
    """The ``message`` of a ``kind: Status`` body, else the HTTP reason; on one line."""
    try:
        message = str(json.loads(exc.body or "")["message"])
    except (ValueError, KeyError, TypeError):
        message = str(exc.reason or "")
    return " ".join(message.split())


def to_dict(api: Any, obj: Any) -> dict[str, Any]:
    """A client model as the plain camelCase dict of the Kubernetes JSON shape."""
    return dict(api.api_client.sanitize_for_serialization(obj))
