"""CronJobs as plain dicts: picking a pipeline's out of ``helm template`` output.

The backfill Job is built from a CronJob in the Kubernetes JSON shape (camelCase keys),
whether it was read from the API server (:mod:`runner.deploy.cluster`) or rendered by
``helm template`` and read here.  ``yaml`` is imported on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.errors import ConfigError

__all__ = ["PIPELINE_LABEL", "cronjob_from_manifest", "labels_of", "name_of", "yaml_module"]

PIPELINE_LABEL = "pipeline-runner/pipeline"


def cronjob_from_manifest(path: Path, pipeline: str) -> dict[str, Any]:
    """The CronJob labelled ``pipeline-runner/pipeline=<pipeline>`` in a multi-document file.

    For ``helm template`` output (or ``kubectl get -o yaml``, whose ``List`` is unpacked),
    when the release is not installed or the caller may not read it.  Documents are read
    one at a time; only matching CronJobs are kept.
    """
    matches, others = _matching_cronjobs(path, pipeline)
    if len(matches) > 1:
        names = ", ".join(sorted(name_of(m) for m in matches))
        raise ConfigError(
            f"{path}: {len(matches)} CronJobs are labelled {PIPELINE_LABEL}={pipeline} "
            f"({names}); render one release only"
        )
    if not matches:
        seen = f"CronJobs there are for: {', '.join(sorted(others))}" if others else "no CronJob"
        raise ConfigError(
            f"{path}: no CronJob labelled {PIPELINE_LABEL}={pipeline} ({seen}); "
            "is the pipeline disabled, or is this not `helm template` output?"
        )
    return matches[0]


def _matching_cronjobs(path: Path, pipeline: str) -> tuple[list[dict[str, Any]], set[str]]:
    """The file's CronJobs of ``pipeline``, and the pipelines of its other CronJobs."""
    yaml = yaml_module()
    matches: list[dict[str, Any]] = []
    others: set[str] = set()
    try:
        with path.open(encoding="utf-8") as handle:
            for document in yaml.safe_load_all(handle):
                for item in _objects(document):
                    if item.get("kind") != "CronJob":
                        continue
                    label = labels_of(item).get(PIPELINE_LABEL)
                    if label == pipeline:
                        matches.append(item)
                    else:
                        others.add(str(label))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the manifest: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML manifest (not UTF-8 text)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{where}: not a YAML manifest: {problem}") from None
    return matches, others


def yaml_module() -> Any:
    """PyYAML (a dependency of ``kubernetes``), imported on first use."""
    import yaml  # type: ignore[import-untyped]  # no stubs installed

    return yaml


def _objects(document: Any) -> list[dict[str, Any]]:
    """The objects of one YAML document: itself, or the items of a ``*List``."""
    if not isinstance(document, dict):
        return []
    if str(document.get("kind", "")).endswith("List") and isinstance(document.get("items"), list):
        return [item for item in document["items"] if isinstance(item, dict)]
    return [document]


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """``metadata.labels`` of a Kubernetes object dict, empty when missing or malformed."""
    metadata = obj.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    return labels if isinstance(labels, Mapping) else {}


def name_of(obj: Mapping[str, Any]) -> str:
    """``metadata.name`` of a Kubernetes object dict; a ConfigError without one."""
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{obj.get('kind') or 'object'} without metadata.name")
    return name
