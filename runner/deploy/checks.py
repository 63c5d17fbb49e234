"""``runner check``: is this deployment ready?  Used by the chart's ``helm test`` pod.

Checks, each reported on its own: ClickHouse answers with the configured credentials; its
schema is at the head of this image's migrations; every pipeline loads; and, inside a
cluster, the release's CronJobs are what the chart intended: one for every pipeline the
values do not disable (``RUNNER_DISABLED_PIPELINES``), none for a disabled one, each
running its own image (``RUNNER_PIPELINE_IMAGES`` for per-pipeline overrides, else
``RUNNER_IMAGE``).  The chart's ``helm test`` pod sets those from the values.  The
Kubernetes access is read-only (list CronJobs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.deploy.manifest import PIPELINE_LABEL, labels_of
from runner.errors import RunnerError
from runner.redaction import scrub_text

if TYPE_CHECKING:
    from runner.pipeline.discovery import Registry
    from runner.settings import Settings


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome."""

    name: str
    ok: bool
    detail: str

    def __post_init__(self) -> None:
        # the detail is often an error echoing a URL or a server's answer: no secrets
        object.__setattr__(self, "detail", scrub_text(self.detail))


def check_deployment(
    settings: Settings, registry: Registry, *, batch_api: Any | None = None
) -> list[CheckResult]:
    """Run every check; never raises for a failed check, only reports it."""
    from runner.migrate.gate import schema_gate
    from runner.warehouse.client import Warehouse

    results: list[CheckResult] = []
    try:
        warehouse = Warehouse.connect(settings)
    except RunnerError as exc:
        results.append(CheckResult("warehouse", False, str(exc)))
    else:
        results.append(CheckResult("warehouse", True, warehouse.target.describe()))
        try:
            schema_gate(settings, warehouse, wait_seconds=0)
            results.append(CheckResult("schema", True, "at the head of this image's migrations"))
        except RunnerError as exc:
            results.append(CheckResult("schema", False, str(exc)))
        finally:
            warehouse.close()
    pipelines, failures = registry.load_all()
    for failure in failures:
        results.append(CheckResult(f"pipeline:{failure.name}", False, str(failure.error)))
    names = sorted(p.name for p in pipelines)
    results.append(CheckResult("pipelines", not failures, f"{len(names)} load"))
    if not settings.release:
        results.append(
            CheckResult("cronjobs", True, "skipped: not in a release (RUNNER_RELEASE unset)")
        )
        return results
    known = set(names) | {failure.name for failure in failures}
    unknown = sorted((set(settings.disabled_pipelines) | set(settings.pipeline_images)) - known)
    if unknown:
        results.append(
            CheckResult(
                "intended",
                False,
                f"the release configures pipelines this image does not have: {', '.join(unknown)}",
            )
        )
    results.extend(_cronjobs(settings, names, batch_api))
    return results


def _cronjobs(settings: Settings, names: list[str], batch_api: Any | None) -> list[CheckResult]:
    from runner.deploy.cluster import list_cronjobs
    from runner.kube.client import pod_namespace

    namespace = settings.lease_namespace or pod_namespace()
    if not namespace:
        return [CheckResult("cronjobs", False, "no namespace: set RUNNER_LEASE_NAMESPACE")]
    selector = f"app.kubernetes.io/instance={settings.release},{PIPELINE_LABEL}"
    try:
        listed = list_cronjobs(namespace, selector, purpose="runner check", api=batch_api)
    except RunnerError as exc:  # the API's failures arrive mapped, in one line
        return [CheckResult("cronjobs", False, str(exc))]
    found: dict[str, list[str]] = {}
    for item in listed:
        pipeline = str(labels_of(item).get(PIPELINE_LABEL))
        containers = item["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        found[pipeline] = [str(c.get("image")) for c in containers if c.get("name") == "runner"]
    disabled = set(settings.disabled_pipelines)
    results = []
    for name in names:
        images = found.get(name)
        intended = settings.pipeline_images.get(name) or settings.image
        whose = "its image override" if name in settings.pipeline_images else "this release's image"
        if name in disabled:
            if images is not None:
                reason = "the pipeline is disabled, yet has a CronJob"
                results.append(CheckResult(f"cronjob:{name}", False, reason))
        elif images is None:
            results.append(CheckResult(f"cronjob:{name}", False, "no CronJob in this release"))
        elif intended and intended not in images:
            results.append(
                CheckResult(
                    f"cronjob:{name}",
                    False,
                    f"runs {', '.join(images)}, {whose} is {intended}",
                )
            )
        else:
            results.append(CheckResult(f"cronjob:{name}", True, ", ".join(images)))
    extra = sorted(set(found) - set(names))
    if extra:
        results.append(
            CheckResult("cronjobs", False, f"CronJobs without a pipeline: {', '.join(extra)}")
        )
    return results
