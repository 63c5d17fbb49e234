"""Reading CronJobs from and creating backfill Jobs in a cluster, through :mod:`runner.kube.api`.

The pure part (building the Job from a CronJob) is :mod:`runner.deploy.backfill_job`; this
module only talks to the API server, with the gateway's timeouts and error mapping, and
says what 404/409 mean here (no such CronJob, the backfill was already started).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runner.deploy.manifest import PIPELINE_LABEL
from runner.errors import ConfigError
from runner.kube.api import KubeConflictError, KubeNotFoundError, Target, call, to_dict

__all__ = ["batch_api", "create_job", "find_cronjob", "list_cronjobs", "read_cronjob"]

_BACKFILL_RBAC = (
    "the caller needs '{verb}' on {plural} (batch) in that namespace "
    "(the chart's backfill Role, rbac.backfill.subjects, grants it)"
)


def batch_api(purpose: str, api: Any | None = None) -> Any:
    """``api``, else a ``BatchV1Api`` from the pod's service account or the kubeconfig."""
    if api is not None:
        return api
    from kubernetes import client

    from runner.kube.client import build_api_client

    return client.BatchV1Api(build_api_client(purpose))


def _target(kind: str, namespace: str, name: str | None, verb: str, hint: str = "") -> Target:
    plural = f"{kind.lower()}s"
    rbac = _BACKFILL_RBAC.format(verb=verb, plural=plural) + hint
    return Target(kind, f"{plural}.batch", namespace, name, rbac)


def read_cronjob(namespace: str, name: str, *, api: Any | None = None) -> dict[str, Any]:
    """The live CronJob ``namespace/name`` as a camelCase dict (``api``: a BatchV1Api)."""
    batch = batch_api("runner backfill job", api)
    target = _target("CronJob", namespace, name, "get")
    try:
        found = call(batch, "get", target, batch.read_namespaced_cron_job, name, namespace)
    except KubeNotFoundError:
        raise ConfigError(
            f"no CronJob {namespace}/{name}; is the release installed? or use --from-manifest"
        ) from None
    return to_dict(batch, found)


def list_cronjobs(
    namespace: str, selector: str, *, purpose: str, api: Any | None = None
) -> list[dict[str, Any]]:
    """The CronJobs in ``namespace`` matching the label ``selector``, as camelCase dicts."""
    batch = batch_api(purpose, api)
    target = _target("CronJob", namespace, None, "list")
    listed = call(
        batch, "list", target, batch.list_namespaced_cron_job, namespace, label_selector=selector
    )
    return [to_dict(batch, item) for item in listed.items]


def find_cronjob(
    namespace: str, pipeline: str, release: str | None, *, api: Any | None = None
) -> dict[str, Any]:
    """The live CronJob of ``pipeline`` (by its labels, in ``release`` if given)."""
    selector = f"{PIPELINE_LABEL}={pipeline}"
    if release:
        selector += f",app.kubernetes.io/instance={release}"
    try:
        items = list_cronjobs(namespace, selector, purpose="runner backfill job", api=api)
    except ConfigError as exc:
        raise type(exc)(f"{exc}; or use --from-manifest") from None
    if len(items) != 1:
        found = "no CronJob" if not items else f"{len(items)} CronJobs"
        raise ConfigError(
            f"{found} labelled {selector} in {namespace}: is the release installed? "
            "(set RUNNER_RELEASE to pick one release, or use --from-manifest)"
        )
    return items[0]


def create_job(
    job: Mapping[str, Any], *, namespace: str | None = None, api: Any | None = None
) -> dict[str, Any]:
    """Create ``job`` (in ``namespace``, else its own) and return the server's copy as a dict."""
    from pydantic import ValidationError

    name = (job.get("metadata") or {}).get("name") or "<no name>"
    own = (job.get("metadata") or {}).get("namespace")
    if namespace and own and namespace != own:
        raise ConfigError(f"Job {name} is for namespace {own}, not {namespace}")
    target_namespace = namespace or own
    if not target_namespace:
        raise ConfigError(f"Job {name} has no namespace: give one (-n/--namespace)")
    batch = batch_api("runner backfill job", api)
    target = _target("Job", target_namespace, name, "create")
    try:
        created = call(
            batch, "create", target, batch.create_namespaced_job, target_namespace, body=dict(job)
        )
    except KubeConflictError:
        raise ConfigError(
            f"a Job named {target_namespace}/{name} already exists (this backfill was already "
            f"started?): see `kubectl -n {target_namespace} get job {name}`, "
            "or use a new backfill id"
        ) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"] if part != "body")
        raise ConfigError(
            f"{target.where} does not fit the kubernetes client's batch/v1 Job: "
            f"{field}: {first['msg']}"
        ) from None
    return to_dict(batch, created)
