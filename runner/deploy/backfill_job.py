"""Backfill Jobs: one batch/v1 Indexed Job per backfill, built from the pipeline's CronJob.

The Job is made much as ``kubectl create job --from=cronjob/<name>`` makes one (the
CronJob's job template with its labels and annotations, ``cronjob.kubernetes.io/instantiate:
manual``), so image, service account, security contexts, secrets and resources are exactly
the scheduled runs'.  It then becomes an Indexed Job: completion index ``i`` runs window
``i`` of ``RUNNER_BACKFILL_WINDOWS`` (Kubernetes sets ``JOB_COMPLETION_INDEX`` in each
pod), each index retried on its own.

Unlike kubectl's, it has no ownerReference to the CronJob: the CronJob controller counts
every Job it controls against ``successfulJobsHistoryLimit``/``failedJobsHistoryLimit``
and deletes the oldest, so a finished backfill would vanish after a few scheduled runs.
``ttlSecondsAfterFinished`` (copied from the CronJob) removes it instead.  It is not
Helm's either: ``helm.sh/chart`` is dropped and ``app.kubernetes.io/managed-by`` says
``pipeline-runner``, so tools that track Helm's objects do not adopt or prune it.

Everything is a plain dict in the Kubernetes JSON shape (camelCase keys), so one code path
serves a CronJob read from the API server and one rendered by ``helm template``.
Building is pure (no API calls): reading the CronJob is :mod:`runner.deploy.cluster` or
:mod:`runner.deploy.manifest`, creating the Job :mod:`runner.deploy.cluster`; their
functions are re-exported here, where callers always found them.

Kubernetes versions: ``backoffLimitPerIndex``, ``maxFailedIndexes`` and the ``FailIndex``
pod-failure action are beta and on by default from 1.29 and GA in 1.33; they are in the
official schemas of every version the chart supports (1.30 and newer).  A server with the
``JobBackoffLimitPerIndex`` feature gate turned off rejects the Job (422), since its
``FailIndex`` rule needs the field.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runner.deploy.cluster import create_job, read_cronjob
from runner.deploy.manifest import (
    PIPELINE_LABEL,
    cronjob_from_manifest,
    labels_of,
    name_of,
    yaml_module,
)
from runner.errors import ConfigError, ExitCode

if TYPE_CHECKING:
    from runner.pipeline.windows import Window

__all__ = [
    "INDEX_ENV",
    "PIPELINE_LABEL",
    "WINDOWS_ENV",
    "build_backfill_job",
    "create_job",
    "cronjob_from_manifest",
    "read_cronjob",
    "to_yaml",
    "window_for_index",
]

BACKFILL_ID_LABEL = "pipeline-runner/backfill-id"
COMPONENT_LABEL = "app.kubernetes.io/component"
INSTANTIATE_ANNOTATION = "cronjob.kubernetes.io/instantiate"
START_ANNOTATION = "pipeline-runner/backfill-start"
END_ANNOTATION = "pipeline-runner/backfill-end"
COUNT_ANNOTATION = "pipeline-runner/backfill-windows"
CONTAINER = "runner"
INDEX_ENV = "JOB_COMPLETION_INDEX"
WINDOWS_ENV = "RUNNER_BACKFILL_WINDOWS"
ID_ENV = "RUNNER_BACKFILL_ID"
TRIGGER_ENV = "RUNNER_TRIGGER"
#: Linux refuses to exec a process with any single "NAME=value" environment string longer
#: than MAX_ARG_STRLEN (32 pages = 128 KiB, counting the trailing NUL): the pod would never
#: start.  This, not the 256 KiB annotation budget, bounds the windows a Job can carry.
MAX_ENV_STRING_BYTES = 131_072
#: API-server limit on parallelism of an Indexed Job.
MAX_PARALLELISM = 100_000
MAX_NAME_LENGTH = 63  # a Job's name is also a label value on its pods
PER_INDEX_ACTIONS = frozenset({"FailJob", "FailIndex", "Ignore", "Count"})
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "pipeline-runner"
HELM_CHART_LABEL = "helm.sh/chart"
#: Exits that concern one window only: the run failed on its data (1) or another run
#: holds the window (5).  They fail their index; other final exits fail the whole Job.
PER_WINDOW_EXITS = (int(ExitCode.FAILED), int(ExitCode.ALREADY_RUNNING))
#: One run's deadline when the CronJob has none (the chart's cronjob.activeDeadlineSeconds).
DEFAULT_RUN_DEADLINE_SECONDS = 7200
#: Set by `runner render` on a CronJob: one window's deadline (the pipeline's timeout_seconds).
WINDOW_DEADLINE_ANNOTATION = "pipeline-runner/window-deadline-seconds"
_BACKFILL_ID = re.compile(r"[0-9a-f]{8}")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_INDEX = re.compile(r"[0-9]{1,9}")


# -- building the Job ------------------------------------------------------------------


def build_backfill_job(
    cronjob: Mapping[str, Any],
    *,
    pipeline: str,
    windows: Sequence[Window],
    parallelism: int,
    backfill_id: str,
    backoff_limit_per_index: int = 2,
    max_failed_indexes: int | None = None,
    active_deadline_seconds: int | None = None,
) -> dict[str, Any]:
    """An Indexed Job running ``windows`` (index ``i`` runs ``windows[i]``) from ``cronjob``.

    Changed from the CronJob's job template, and nothing else:

    - ``completionMode: Indexed``, ``completions`` (one per window), ``parallelism``,
      ``backoffLimitPerIndex`` and optionally ``maxFailedIndexes``; a broken window then
      uses up its own retries, not the whole backfill's.
    - ``backoffLimit`` removed: set, it caps the failures of all indexes together and
      defeats per-index retries (unset, it defaults to MaxInt32 with backoffLimitPerIndex).
    - ``activeDeadlineSeconds``: one run's deadline (the CronJob's, else
      ``DEFAULT_RUN_DEADLINE_SECONDS``) times the waves of ``parallelism`` windows times
      the tries per window, so a stuck backfill ends; ``active_deadline_seconds`` sets it.
      ``ttlSecondsAfterFinished`` stays as in the CronJob.
    - ``podFailurePolicy``: a ``FailJob`` rule matching exit 1 or 5 (the run failed on
      this window's data, or another run holds the window's lock) gets a ``FailIndex``
      rule for them in front of it (and loses them from an ``In`` list), so one bad or
      busy window fails only its index; exits 2 and 3 (usage and configuration: every
      window would fail alike) still fail the Job.  ``Ignore``, ``Count`` and
      ``FailIndex`` rules are kept; any other action is refused.
    - the ``runner`` container: args ``backfill index <pipeline>``; env ``RUNNER_TRIGGER=
      backfill`` (replacing the CronJob's), ``RUNNER_BACKFILL_ID`` and
      ``RUNNER_BACKFILL_WINDOWS`` (compact JSON ``[[start, end], ...]`` in index order).
    - pod template labels: ``pipeline-runner/backfill-id``.

    The Job's own labels are the job template's plus backfill id, pipeline and
    ``app.kubernetes.io/component: backfill``, with Helm's ``helm.sh/chart`` dropped and
    ``app.kubernetes.io/managed-by: pipeline-runner`` (on its pods too); its annotations
    those kubectl sets plus the range and window count.  No ownerReference (see above).
    """
    _check_arguments(pipeline, windows, parallelism, backfill_id, backoff_limit_per_index)
    _check_max_failed(max_failed_indexes, windows)
    where = f"CronJob {name_of(cronjob)}"
    owner = labels_of(cronjob).get(PIPELINE_LABEL)
    if owner is not None and owner != pipeline:
        raise ConfigError(f"{where} belongs to pipeline {owner!r}, not {pipeline!r}")
    job_template = _mapping(_mapping(cronjob, "spec", where), "jobTemplate", where)
    spec = copy.deepcopy(dict(_mapping(job_template, "spec", where)))
    windows_json = _windows_json(windows)

    spec.pop("backoffLimit", None)
    run_deadline = _window_deadline(cronjob, spec.get("activeDeadlineSeconds"), where)
    if active_deadline_seconds is None:
        waves = -(-len(windows) // parallelism)
        active_deadline_seconds = run_deadline * waves * (backoff_limit_per_index + 1)
    spec["activeDeadlineSeconds"] = _positive_deadline(active_deadline_seconds)
    spec["completionMode"] = "Indexed"
    spec["completions"] = len(windows)
    spec["parallelism"] = parallelism
    spec["backoffLimitPerIndex"] = backoff_limit_per_index
    if max_failed_indexes is not None:
        spec["maxFailedIndexes"] = max_failed_indexes
    if spec.get("podFailurePolicy"):
        spec["podFailurePolicy"] = _per_index_policy(spec["podFailurePolicy"], where)

    _backfill_pod(_mapping(spec, "template", where), where, pipeline, backfill_id, windows_json)
    metadata = _job_metadata(cronjob, job_template, pipeline, windows, backfill_id)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def _backfill_pod(
    pod: dict[str, Any], where: str, pipeline: str, backfill_id: str, windows_json: str
) -> None:
    """Make the job template's pod run ``backfill index`` with the windows in its env."""
    pod_spec = _mapping(pod, "spec", where)
    if pod_spec.get("restartPolicy") != "Never":
        raise ConfigError(
            f"{where}: backoffLimitPerIndex needs restartPolicy Never in the pod template, "
            f"not {pod_spec.get('restartPolicy')!r}"
        )
    pod_labels = _not_helms(pod.setdefault("metadata", {}).get("labels") or {})
    pod["metadata"]["labels"] = pod_labels | {BACKFILL_ID_LABEL: backfill_id}
    container = _runner_container(pod_spec, where)
    container["args"] = ["backfill", "index", pipeline]
    container["env"] = _with_env(
        container.get("env") or [],
        {TRIGGER_ENV: "backfill", ID_ENV: backfill_id, WINDOWS_ENV: windows_json},
    )


def _job_metadata(
    cronjob: Mapping[str, Any],
    job_template: Mapping[str, Any],
    pipeline: str,
    windows: Sequence[Window],
    backfill_id: str,
) -> dict[str, Any]:
    """The Job's name, namespace, labels and annotations (see build_backfill_job)."""
    template_meta = job_template.get("metadata") or {}
    labels = _not_helms(template_meta.get("labels") or {})
    labels |= {BACKFILL_ID_LABEL: backfill_id, PIPELINE_LABEL: pipeline}
    labels[COMPONENT_LABEL] = "backfill"
    annotations = {INSTANTIATE_ANNOTATION: "manual", **(template_meta.get("annotations") or {})}
    annotations |= {
        START_ANNOTATION: min(w.start for w in windows).isoformat(),
        END_ANNOTATION: max(w.end for w in windows).isoformat(),
        COUNT_ANNOTATION: str(len(windows)),
    }
    metadata: dict[str, Any] = {"name": _job_name(name_of(cronjob), backfill_id)}
    namespace = (cronjob.get("metadata") or {}).get("namespace")
    if namespace:
        metadata["namespace"] = namespace
    metadata |= {"labels": labels, "annotations": annotations}
    return metadata


def window_for_index(environ: Mapping[str, str]) -> tuple[str, str]:
    """The (start, end) ISO strings this pod of a backfill Job runs, from its environment."""
    raw_index = environ.get(INDEX_ENV)
    if raw_index is None:
        raise ConfigError(
            f"{INDEX_ENV} is not set: `runner backfill index` runs in a pod of an Indexed "
            "backfill Job (create one with `runner backfill job`)"
        )
    if not _INDEX.fullmatch(raw_index):
        raise ConfigError(f"{INDEX_ENV}={raw_index!r} is not a completion index (0, 1, ...)")
    index = int(raw_index)
    raw = environ.get(WINDOWS_ENV)
    if raw is None:
        raise ConfigError(f"{WINDOWS_ENV} is not set: this pod is not from a backfill Job")
    try:
        windows = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{WINDOWS_ENV} is not JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(windows, list):
        raise ConfigError(f"{WINDOWS_ENV} must be a JSON list of [start, end] pairs")
    if index >= len(windows):
        raise ConfigError(
            f"{INDEX_ENV}={index} is out of range: {WINDOWS_ENV} holds {len(windows)} windows"
        )
    pair = windows[index]
    if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
        raise ConfigError(f"{WINDOWS_ENV}[{index}] is not a [start, end] pair of ISO strings")
    return pair[0], pair[1]


def to_yaml(job: Mapping[str, Any]) -> str:
    """The Job as YAML in its own key order, for review or ``kubectl create -f -``."""
    text: str = yaml_module().safe_dump(
        dict(job), sort_keys=False, allow_unicode=True, width=1 << 30
    )
    return text


# -- helpers ---------------------------------------------------------------------------


def _window_deadline(cronjob: Mapping[str, Any], job_deadline: object, where: str) -> int:
    """One window's deadline: the pipeline's own, else the CronJob's Job's, else the default.

    A scheduled Job may also catch up earlier windows, so its deadline can be a multiple
    of one window's; `runner render` records the single window's in an annotation.
    """
    annotations = _mapping(cronjob, "metadata", where).get("annotations") or {}
    window = str(annotations.get(WINDOW_DEADLINE_ANNOTATION, ""))
    if window and not window.isdigit():
        raise ConfigError(
            f"{where}: annotation {WINDOW_DEADLINE_ANNOTATION} is {window!r}, "
            "not a number of seconds"
        )
    if window:
        return int(window)
    return job_deadline if isinstance(job_deadline, int) else DEFAULT_RUN_DEADLINE_SECONDS


def _mapping(parent: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise ConfigError(f"{where} has no {key} object")
    return value


def _check_max_failed(max_failed_indexes: int | None, windows: Sequence[Window]) -> None:
    if max_failed_indexes is not None and not 0 <= max_failed_indexes <= len(windows):
        raise ConfigError(
            f"max failed indexes must be between 0 and the number of windows "
            f"({len(windows)}), not {max_failed_indexes}"
        )


def _positive_deadline(seconds: int) -> int:
    if seconds < 1:
        raise ConfigError(f"a backfill's deadline must be 1 s or more, not {seconds}")
    return seconds


def _check_arguments(
    pipeline: str,
    windows: Sequence[Window],
    parallelism: int,
    backfill_id: str,
    backoff_limit_per_index: int,
) -> None:
    if not _BACKFILL_ID.fullmatch(backfill_id):
        raise ConfigError(f"backfill id {backfill_id!r} must be 8 lower-case hex characters")
    if not pipeline or not _LABEL_VALUE.fullmatch(pipeline):
        raise ConfigError(f"pipeline name {pipeline!r} is not a valid Kubernetes label value")
    if not windows:
        raise ConfigError("a backfill Job needs at least one window")
    if not 1 <= parallelism <= MAX_PARALLELISM:
        raise ConfigError(f"parallelism must be between 1 and {MAX_PARALLELISM}, not {parallelism}")
    if backoff_limit_per_index < 0:
        raise ConfigError(f"retries per window must be 0 or more, not {backoff_limit_per_index}")


def _windows_json(windows: Sequence[Window]) -> str:
    """The compact JSON of the windows, refused when the pod could not even start with it."""
    pieces = [
        json.dumps([w.start.isoformat(), w.end.isoformat()], separators=(",", ":")) for w in windows
    ]
    text = "[" + ",".join(pieces) + "]"
    budget = MAX_ENV_STRING_BYTES - len(WINDOWS_ENV) - 2  # "NAME=" and the NUL
    size = len(text.encode())
    if size > budget:
        used, fit = 2, 0
        for piece in pieces:
            used += len(piece.encode()) + (1 if fit else 0)
            if used > budget:
                break
            fit += 1
        raise ConfigError(
            f"{len(windows)} windows do not fit in one Job: {WINDOWS_ENV} would be {size} "
            f"bytes, a process environment string may have at most {MAX_ENV_STRING_BYTES}; "
            f"only {fit} of them fit: use a coarser --step or split the range"
        )
    return text


def _job_name(cronjob: str, backfill_id: str) -> str:
    """``<cronjob>-bf-<id>`` in 63 characters, shortening the CronJob part, never the id."""
    suffix = f"-bf-{backfill_id}"
    return cronjob[: MAX_NAME_LENGTH - len(suffix)].rstrip("-.") + suffix


def _runner_container(pod_spec: dict[str, Any], where: str) -> dict[str, Any]:
    containers = pod_spec.get("containers") or []
    for container in containers:
        if isinstance(container, dict) and container.get("name") == CONTAINER:
            return container
    names = ", ".join(str(c.get("name")) for c in containers if isinstance(c, dict)) or "none"
    raise ConfigError(f"{where}: no container named {CONTAINER!r} in its pod (found: {names})")


def _with_env(env: list[dict[str, Any]], values: dict[str, str]) -> list[dict[str, Any]]:
    """``env`` with ``values`` set: an existing entry is replaced in place, once."""
    result: list[dict[str, Any]] = []
    placed: set[str] = set()
    for entry in env:
        name = entry.get("name")
        if name in values:
            if name not in placed:
                result.append({"name": name, "value": values[name]})
                placed.add(name)
            continue
        result.append(entry)
    result.extend({"name": k, "value": v} for k, v in values.items() if k not in placed)
    return result


def _not_helms(labels: Mapping[str, Any]) -> dict[str, Any]:
    """``labels`` without Helm's chart label, and managed by pipeline-runner, not Helm."""
    kept = {k: v for k, v in labels.items() if k != HELM_CHART_LABEL}
    return kept | {MANAGED_BY_LABEL: MANAGED_BY}


def _per_index_policy(policy: dict[str, Any], where: str) -> dict[str, Any]:
    """The pod failure policy for per-index retries (the rule is in build_backfill_job)."""
    rules: list[dict[str, Any]] = []
    for number, rule in enumerate(policy.get("rules") or [], start=1):
        action = rule.get("action")
        if action not in PER_INDEX_ACTIONS:
            raise ConfigError(
                f"{where}: podFailurePolicy rule {number} has action {action!r}; a backfill "
                f"Job allows {', '.join(sorted(PER_INDEX_ACTIONS))}"
            )
        codes = rule.get("onExitCodes")
        own = [code for code in PER_WINDOW_EXITS if codes and _matches(codes, code)]
        if action == "FailJob" and codes and own:
            per_window = {k: v for k, v in codes.items() if k == "containerName"}
            per_window |= {"operator": "In", "values": own}
            rules.append({"action": "FailIndex", "onExitCodes": per_window})
            if codes.get("operator") == "In":
                rest = [code for code in codes.get("values") or [] if code not in own]
                if rest:
                    rules.append(rule | {"onExitCodes": codes | {"values": rest}})
                continue
        rules.append(rule)
    return policy | {"rules": rules}


def _matches(codes: Mapping[str, Any], code: int) -> bool:
    listed = code in (codes.get("values") or [])
    return listed if codes.get("operator") == "In" else not listed
