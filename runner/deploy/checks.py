"""``runner check``: is this deployment ready?  Used by the chart's ``helm test`` pod.

Checks, each reported on its own: ClickHouse answers with the configured credentials; its
schema is at the head of this image's migrations; every pipeline loads; and, inside a
cluster, every discovered pipeline has its CronJob in this release, running this image.
The Kubernetes access is read-only (list CronJobs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.errors import RunnerError
from runner.redaction import scrub_text

if TYPE_CHECKING:
    from runner.pipeline.discovery import Registry
    from runner.settings import Settings

PIPELINE_LABEL = "pipeline-runner/pipeline"


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
            schema_gate(settings, warehouse)
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
    results.extend(_cronjobs(settings, names, batch_api))
    return results


def _cronjobs(settings: Settings, names: list[str], batch_api: Any | None) -> list[CheckResult]:
    from runner.kube.client import build_api_client, pod_namespace

    namespace = settings.lease_namespace or pod_namespace()
    if not namespace:
        return [CheckResult("cronjobs", False, "no namespace: set RUNNER_LEASE_NAMESPACE")]
    try:
        if batch_api is None:
            from kubernetes import client

            batch_api = client.BatchV1Api(build_api_client("runner check"))
        listed: Any = batch_api.list_namespaced_cron_job(
            namespace,
            label_selector=f"app.kubernetes.io/instance={settings.release},{PIPELINE_LABEL}",
        )
    except RunnerError as exc:
        return [CheckResult("cronjobs", False, str(exc))]
    except Exception as exc:  # noqa: BLE001 - any API failure is a failed check, in one line
        reason = getattr(exc, "reason", None) or type(exc).__name__
        status = getattr(exc, "status", None)
        return [
            CheckResult(
                "cronjobs", False, f"cannot list CronJobs in {namespace}: {status} {reason}"
            )
        ]
    found: dict[str, list[str]] = {}
    item: Any
    for item in listed.items:
        pipeline = str((item.metadata.labels or {}).get(PIPELINE_LABEL))
        containers = item.spec.job_template.spec.template.spec.containers
        found[pipeline] = [str(c.image) for c in containers if c.name == "runner"]
    results = []
    for name in names:
        images = found.get(name)
        if images is None:
            results.append(CheckResult(f"cronjob:{name}", False, "no CronJob in this release"))
        elif settings.image and settings.image not in images:
            results.append(
                CheckResult(
                    f"cronjob:{name}",
                    False,
                    f"runs {', '.join(images)}, this release's image is {settings.image}",
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
