"""The functions pipeline authors declare pipelines with.

etl, el, sequential, parallel and conditional validate their arguments when the
pipeline is declared and return a Pipeline.  They share the declaration options of
:class:`SpecOptions` (schedule, ownership, runtime hints), given as keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from typing_extensions import Unpack

from runner.errors import PipelineDefinitionError
from runner.pipeline.kinds import (
    ConditionalPipeline,
    FailurePolicy,
    FlowPipeline,
    ParallelPipeline,
    Pipeline,
    SequentialPipeline,
    check_tree,
)
from runner.pipeline.spec import PipelineSpec, Resources, build_spec
from runner.pipeline.steps import as_extractor, as_loader, as_transformer

if TYPE_CHECKING:
    from runner.pipeline.context import RunContext


class SpecOptions(TypedDict, total=False):
    """Declaration options every kind accepts, as keyword arguments (all optional).

    - ``schedule``: five-field cron or ``@hourly``/``@daily``/...; None: manual runs only.
    - ``timezone``: IANA zone the schedule is read in (windows are stored in UTC).
    - ``description``, ``owner``, ``tags``: shown by ``runner list/show`` and on the
      CronJob.
    - ``timeout_seconds``: one window's time limit; the CronJob's Job deadline.
    - ``resources``: CPU/memory requests and limits for the pod
      (``{"cpu_request": "250m", "memory_limit": "1Gi"}``).
    - ``freshness``: ``[{"table": ..., "column": ..., "max_age_seconds": ...}]`` checked
      by ``runner health``.
    - ``checks``: data checks run in ClickHouse on the window's rows after the load,
      e.g. ``[{"kind": "not_null", "table": "orders", "column": "id", "time_column":
      "created_at"}]``; kinds ``not_null``, ``unique``, ``accepted_values``,
      ``row_count_between``, ``custom_sql`` (see :mod:`runner.pipeline.checks`).
    - ``volume``: how ``runner health`` judges the rows each window loaded against the
      earlier windows: ``{"min_fraction": 0.5, "windows": 7, "allow_empty": False}``
      (:class:`runner.pipeline.spec.Volume`).
    - ``incremental``: each run starts where the last successful one ended.
    - ``concurrent_windows``: runs of different windows may overlap (no pipeline lock).
    - ``catchup``: earlier scheduled windows a scheduled run loads first if they never
      succeeded (default 3; 0 turns it off).
    """

    schedule: str | None
    timezone: str
    description: str
    owner: str | None
    tags: Iterable[str]
    timeout_seconds: int | None
    resources: Resources | Mapping[str, str] | None
    freshness: Sequence[Mapping[str, Any]]
    checks: Sequence[Mapping[str, Any]]
    volume: Mapping[str, Any]
    incremental: bool
    concurrent_windows: bool
    catchup: int


def _spec(name: str, options: SpecOptions) -> PipelineSpec:
    fields: dict[str, Any] = dict(options)
    fields["tags"] = tuple(options.get("tags", ()))
    fields["freshness"] = tuple(options.get("freshness", ()))
    fields["checks"] = tuple(options.get("checks", ()))
    fields["resources"] = options.get("resources") or Resources()
    return build_spec(name=name, **fields)


def etl(
    name: str,
    *,
    extract: object,
    transform: Sequence[object] | object = (),
    load: object,
    **options: Unpack[SpecOptions],
) -> Pipeline:
    """Extract → transforms → load, one bounded batch at a time.

    ``name`` must match the file (``<name>_pipeline.py``).  ``extract`` is an
    Extractor, a function ``fn(ctx)`` returning batch-likes, or an iterable; ``transform``
    one or a list of Transformers or functions ``fn(batch, ctx)``, applied in order;
    ``load`` a Loader or a function ``fn(batch, ctx)``.  ``options`` are the declaration
    options of :class:`SpecOptions`.
    """
    spec = _spec(name, options)
    transforms = list(transform) if isinstance(transform, list | tuple) else [transform]
    return FlowPipeline(
        spec,
        as_extractor(extract),
        [as_transformer(t) for t in transforms],
        as_loader(load),
        kind="etl",
    )


def el(name: str, *, extract: object, load: object, **options: Unpack[SpecOptions]) -> Pipeline:
    """Extract → load, data unchanged.

    ``name``, ``extract``, ``load`` and ``options`` as for :func:`etl`.
    """
    return FlowPipeline(_spec(name, options), as_extractor(extract), [], as_loader(load), kind="el")


def _children(name: str, steps: Sequence[Pipeline], kind: str) -> list[Pipeline]:
    children = list(steps)
    if not children:
        raise PipelineDefinitionError(f"pipeline {name!r}: a {kind} pipeline needs steps")
    for child in children:
        if not isinstance(child, Pipeline):
            raise PipelineDefinitionError(
                f"pipeline {name!r}: step {child!r} is not a pipeline (use etl(), el(), ...)"
            )
    return children


def sequential(
    name: str,
    *,
    steps: Sequence[Pipeline],
    **options: Unpack[SpecOptions],
) -> Pipeline:
    """Children in order; stop on the first failure.

    ``name`` as for :func:`etl`; ``steps`` are pipelines (their schedules are ignored;
    names unique within the tree); ``options`` as for :func:`etl`.
    """
    spec = _spec(name, options)
    pipeline = SequentialPipeline(spec, _children(name, steps, "sequential"))
    check_tree(pipeline)
    return pipeline


def parallel(
    name: str,
    *,
    steps: Sequence[Pipeline],
    max_workers: int = 4,
    on_failure: str = "fail_fast",
    **options: Unpack[SpecOptions],
) -> Pipeline:
    """Children concurrently, at most ``max_workers`` at once.

    ``name``, ``steps`` and ``options`` as for :func:`sequential`.  ``on_failure``:
    ``fail_fast`` starts no further children after a failure; ``continue`` runs them all
    and reports every failure.
    """
    spec = _spec(name, options)
    if max_workers < 1:
        raise PipelineDefinitionError(f"pipeline {name!r}: max_workers must be at least 1")
    try:
        policy = FailurePolicy(on_failure)
    except ValueError:
        allowed = ", ".join(p.value for p in FailurePolicy)
        raise PipelineDefinitionError(
            f"pipeline {name!r}: on_failure must be one of {allowed}, not {on_failure!r}"
        ) from None
    pipeline = ParallelPipeline(
        spec, _children(name, steps, "parallel"), max_workers=max_workers, on_failure=policy
    )
    check_tree(pipeline)
    return pipeline


def conditional(
    name: str,
    *,
    when: Callable[[RunContext], Hashable],
    then: Pipeline | None = None,
    otherwise: Pipeline | None = None,
    branches: Mapping[Hashable, Pipeline] | None = None,
    **options: Unpack[SpecOptions],
) -> Pipeline:
    """Run the branch the predicate ``when(ctx)`` picks.

    ``name`` and ``options`` as for :func:`etl`.  Either ``then``/``otherwise`` (the
    predicate returns a truth value) or ``branches`` keyed by what the predicate returns
    (``otherwise`` is then the default).
    """
    spec = _spec(name, options)
    if not callable(when):
        raise PipelineDefinitionError(f"pipeline {name!r}: when must be a function of the context")
    if branches is not None and then is not None:
        raise PipelineDefinitionError(f"pipeline {name!r}: give either then= or branches=")
    if branches is None:
        if then is None:
            raise PipelineDefinitionError(f"pipeline {name!r}: then= (or branches=) is required")
        predicate = when

        def truth(ctx: RunContext) -> bool:
            return bool(predicate(ctx))

        truth.__name__ = getattr(when, "__name__", "when")
        pipeline = ConditionalPipeline(spec, truth, {True: then}, otherwise)
    else:
        _children(name, list(branches.values()), "conditional")
        pipeline = ConditionalPipeline(spec, when, branches, otherwise)
    check_tree(pipeline)
    return pipeline
