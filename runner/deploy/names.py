"""Kubernetes object names the chart gives pipelines, and the check that they stay unique.

The chart (``templates/_helpers.tpl``, ``pipeline-runner.names.bounded``) names a
pipeline's CronJob ``<fullname>-<pipeline with _ as ->``.  A CronJob name may have at most
52 characters, because the CronJob controller appends ``-<minutes since epoch>`` (11
characters) to make each Job's name, and a Job's name must fit in 63.  A name that does
not fit (or would end in ``-``) is cut and gets ``-<8 hex of sha256(pipeline)>``, so two
long names sharing a prefix stay apart.  This module computes the same names as Helm
does, so ``runner render`` can refuse pipelines whose names would still collide, for
every length the release's prefix can have (1 to 30 characters), before anything is
installed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from runner.errors import PipelineDefinitionError

#: Longest CronJob name: the controller's Job names (``-`` and 10 digits added) stay <= 63.
CRONJOB_NAME_MAX = 52
#: Longest resource prefix (``pipeline-runner.names.fullname``); fullnameOverride's bound.
FULLNAME_MAX = 30
HASH_CHARS = 8


def short_hash(text: str) -> str:
    """The first characters of sha256(text) in hex, as Helm's ``sha256sum | trunc 8``."""
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def bounded(base: str, limit: int, key: str) -> str:
    """``base`` when it fits in ``limit`` and ends well; else cut, plus ``-<hash of key>``.

    Mirrors the chart's helper exactly: Helm's ``trimSuffix "-"`` removes one hyphen.
    """
    if len(base) <= limit and not base.endswith("-"):
        return base
    head = base[: limit - HASH_CHARS - 1]
    head = head.removesuffix("-")
    return f"{head}-{short_hash(key)}"


def cronjob_name(fullname: str, pipeline: str) -> str:
    """The CronJob name of ``pipeline`` in a release whose resource prefix is ``fullname``."""
    return bounded(f"{fullname}-{pipeline.replace('_', '-')}", CRONJOB_NAME_MAX, pipeline)


def check_unique_cronjob_names(pipelines: Iterable[str]) -> None:
    """Refuse pipelines whose CronJob names would collide under some release prefix.

    The prefix is the same for every pipeline of a release, so only its length matters;
    every possible length is tried.
    """
    names = sorted(set(pipelines))
    for length in range(1, FULLNAME_MAX + 1):
        fullname = "r" * length
        seen: dict[str, str] = {}
        for pipeline in names:
            name = cronjob_name(fullname, pipeline)
            other = seen.setdefault(name, pipeline)
            if other != pipeline:
                raise PipelineDefinitionError(
                    f"pipelines {other!r} and {pipeline!r} would get the same CronJob name "
                    f"{name!r} in a release whose resource prefix has {length} characters "
                    f"(CronJob names are cut to {CRONJOB_NAME_MAX}): rename one of them"
                )
