"""Pipeline kinds: ETL and EL flows, and the sequential, parallel and conditional compositions.

A flow moves bounded Arrow batches from one extractor, through its transforms, into one
loader, checking for cancellation between batches.  Compositions run child pipelines
with child contexts and aggregate their failures.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeAlias

from runner.batches import as_batch, to_batches
from runner.errors import (
    FatalError,
    InterruptedRunError,
    PipelineDefinitionError,
    PipelineError,
    RetriableError,
    RunnerError,
)
from runner.pipeline.context import RejectSink, RunContext, SourceBatches, StepStats
from runner.pipeline.spec import PipelineSpec
from runner.pipeline.steps import Extractor, Loader, Step, Transformer

if TYPE_CHECKING:
    import pyarrow as pa


def _in_step(ctx: RunContext, step: Step, exc: Exception) -> RunnerError:
    """Give an exception raised by a step the run's context, as a framework error."""
    if isinstance(exc, PipelineError):
        return exc.with_context(pipeline=ctx.node, step=step.step_name, window=str(ctx.window))
    if isinstance(exc, RunnerError):
        return exc
    return FatalError(
        f"{type(exc).__name__}: {exc}",
        pipeline=ctx.node,
        step=step.step_name,
        window=str(ctx.window),
    )


class Pipeline(ABC):
    """A declared pipeline: its spec plus how to run it."""

    kind: ClassVar[str]

    def __init__(self, spec: PipelineSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        """The pipeline's name."""
        return self.spec.name

    def children(self) -> Sequence[Pipeline]:
        """Child pipelines of a composition (none for flows)."""
        return ()

    @abstractmethod
    def run(self, ctx: RunContext) -> None:
        """Run once in ``ctx``; raise a RunnerError on failure."""

    @abstractmethod
    def describe_steps(self) -> dict[str, Any]:
        """What the pipeline does, for ``runner show`` and dry runs."""

    def describe(self) -> dict[str, Any]:
        """Spec and steps as plain data."""
        spec = self.spec.model_dump(mode="json", exclude_defaults=True)
        return {"name": self.name, "kind": self.kind, **spec, **self.describe_steps()}


class FlowPipeline(Pipeline):
    """Extract → transforms → load, one bounded batch at a time."""

    def __init__(
        self,
        spec: PipelineSpec,
        extractor: Extractor,
        transformers: Sequence[Transformer],
        loader: Loader,
        *,
        kind: str,
    ) -> None:
        super().__init__(spec)
        self.extractor = extractor
        self.transformers = tuple(transformers)
        self.loader = loader
        self.flow_kind = kind

    @property
    def kind(self) -> str:  # type: ignore[override]
        """'etl' or 'el'."""
        return self.flow_kind

    def describe_steps(self) -> dict[str, Any]:
        """Extractor, transforms and loader."""
        return {
            "extract": self.extractor.describe(),
            "transform": [t.describe() for t in self.transformers],
            "load": self.loader.describe(),
        }

    def reject_sink(self) -> RejectSink | None:
        """The first transform keeping rows other steps reject (``validate(on_error="skip")``).

        Rows a reader cannot parse or place in the window go there (to the quarantine,
        counted against that step's ``max_invalid``); without one they fail the run.
        """
        for transformer in self.transformers:
            if isinstance(transformer, RejectSink) and transformer.takes_rejected:
                return transformer
        return None

    def run(self, ctx: RunContext) -> None:
        """Stream batches from the extractor through the transforms into the loader.

        Extraction and transforms run up to ``PREFETCH_BATCHES`` batches ahead on a
        background thread while this thread loads (see :class:`_Prefetch`): decoding
        (pyarrow) and inserting (the engine) both release the GIL, so the two halves use
        two cores.  Cancellation is checked before each extracted batch; batches that
        passed the check are still loaded, as when the loop was sequential.
        """
        stats = ctx.node_stats
        stats.status = "running"
        step: Step = self.loader
        success = False
        handed = 0
        ctx.sources = SourceBatches(self.extractor)
        ctx.reject_sink = self.reject_sink()
        try:
            self.loader.open(ctx)
            step = self.extractor
            with _Prefetch(self, ctx) as produced:
                for item in produced:
                    if isinstance(item, _Failure):
                        step = item.step
                        if item.raw_rows is not None:
                            stats.batches += 1
                            stats.rows_extracted += item.raw_rows
                        item.reraise()
                    raw_rows, batch = item
                    stats.batches += 1
                    stats.rows_extracted += raw_rows
                    if batch is None:
                        continue
                    step = self.loader
                    self.loader.write(batch, ctx)
                    handed += batch.num_rows
                    stats.bytes_loaded += batch.nbytes
                    stats.rows_loaded = self._rows_loaded(ctx, handed)
                    step = self.extractor
            success = True
        except Exception as exc:
            stats.status = "cancelled" if isinstance(exc, InterruptedRunError) else "failed"
            raise _in_step(ctx, step, exc) from exc
        finally:
            try:
                self.loader.close(ctx, success=success)
            except Exception as exc:
                if success:
                    stats.status = "failed"
                    raise _in_step(ctx, self.loader, exc) from exc
            finally:
                stats.rows_loaded = self._rows_loaded(ctx, handed)
        stats.status = "succeeded"
        ctx.log.info("flow finished", node=ctx.node, **stats.as_dict())

    def _rows_loaded(self, ctx: RunContext, handed: int) -> int:
        """What the loader confirmed written, else the rows handed to it."""
        try:
            written = self.loader.rows_written(ctx)
        except Exception:  # noqa: BLE001 - a count must never change the run's outcome
            return handed
        return handed if written is None else written


#: Batches extracted and transformed ahead of the loader (bounds the memory of a flow to
#: this many batches, plus the one being produced and the one being loaded).
PREFETCH_BATCHES = 2


@dataclass(frozen=True)
class _Failure:
    """An exception of the producing thread, with the step that raised it.

    ``raw_rows`` is set when the batch had been extracted (the statistics count it).
    """

    step: Step
    error: BaseException
    raw_rows: int | None = None

    def reraise(self) -> NoReturn:
        """Raise the producer's exception in the consuming thread."""
        raise self.error


_Produced: TypeAlias = "tuple[int, pa.RecordBatch | None] | _Failure"


class _Prefetch:
    """Extract and transform on a background thread, in order, into a bounded queue.

    Items are ``(raw_rows, batch)`` (``batch`` None when a transform dropped it) or one
    final :class:`_Failure`.  Leaving the context, normally or by an exception, stops the
    producer between batches, closes the extractor's iterator in the producer's own thread
    and joins it, so no thread outlives the run.  The producer runs in a copy of the
    caller's context variables (the run's log binding).
    """

    def __init__(self, flow: FlowPipeline, ctx: RunContext) -> None:
        self._flow = flow
        self._ctx = ctx
        self._queue: queue.Queue[_Produced | None] = queue.Queue(maxsize=PREFETCH_BATCHES)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._produce,),
            name=f"{ctx.node}-extract",
            daemon=True,
        )

    def __enter__(self) -> Iterator[_Produced]:
        self._thread.start()
        return self._items()

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        while True:  # unblock a producer waiting for room, then wait for it to finish
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join()

    def _items(self) -> Iterator[_Produced]:
        while (item := self._queue.get()) is not None:
            yield item
            if isinstance(item, _Failure):
                return

    def _put(self, item: _Produced | None) -> bool:
        """Queue ``item``; False once the consumer has stopped."""
        if self._stop.is_set():
            return False
        self._queue.put(item)
        return not self._stop.is_set()

    def _produce(self) -> None:
        flow, ctx = self._flow, self._ctx
        step: Step = flow.extractor
        raw_rows: int | None = None
        source: Any = None
        batches: Iterator[pa.RecordBatch] | None = None
        first_row = 0  # run-row number of the next extracted row (for source records)
        try:
            source = flow.extractor.extract(ctx)
            batches = to_batches(source, ctx.batch_rows)
            for raw in batches:
                ctx.check_cancelled()
                raw_rows = raw.num_rows
                if ctx.sources is not None:
                    ctx.sources.note(raw, first_row)
                first_row += raw_rows
                batch: pa.RecordBatch | None = raw
                for transformer in flow.transformers:
                    step = transformer
                    batch = as_batch(transformer.transform(batch, ctx))
                    if batch is None or batch.num_rows == 0:
                        batch = None
                        break
                step = flow.extractor
                if not self._put((raw_rows, batch)):
                    return
                raw_rows = None
            sink = ctx.reject_sink
            if sink is not None and isinstance(sink, Step):
                step = sink
                sink.check_rejected(ctx)
            self._put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            self._put(_Failure(step, exc, raw_rows))
        finally:
            for iterator in (batches, source):
                close = getattr(iterator, "close", None)
                if close is not None:
                    with suppress(Exception):  # the run's outcome is already decided
                        close()


class SequentialPipeline(Pipeline):
    """Children in order; the first failure stops the rest."""

    kind = "sequential"

    def __init__(self, spec: PipelineSpec, steps: Sequence[Pipeline]) -> None:
        super().__init__(spec)
        self.steps = tuple(steps)

    def children(self) -> Sequence[Pipeline]:
        """The children, in order."""
        return self.steps

    def describe_steps(self) -> dict[str, Any]:
        """The children."""
        return {"steps": [c.describe() for c in self.steps]}

    def run(self, ctx: RunContext) -> None:
        """Run each child; stop at the first failure."""
        ctx.node_stats.status = "running"
        for child in self.steps:
            ctx.check_cancelled()
            try:
                child.run(ctx.child(child.name))
            except RunnerError:
                ctx.node_stats.status = "failed"
                for rest in self.steps[self.steps.index(child) + 1 :]:
                    ctx.stats.setdefault(rest.name, StepStats()).status = "skipped"
                raise
        ctx.node_stats.status = "succeeded"


class FailurePolicy(StrEnum):
    """What a parallel pipeline does when a child fails."""

    FAIL_FAST = "fail_fast"  # start no further children; wait for running ones
    CONTINUE = "continue"  # run every child, then report all failures


class ParallelPipeline(Pipeline):
    """Children concurrently, at most ``max_workers`` at a time."""

    kind = "parallel"

    def __init__(
        self,
        spec: PipelineSpec,
        steps: Sequence[Pipeline],
        *,
        max_workers: int,
        on_failure: FailurePolicy,
    ) -> None:
        super().__init__(spec)
        self.steps = tuple(steps)
        self.max_workers = max_workers
        self.on_failure = on_failure

    def children(self) -> Sequence[Pipeline]:
        """The children."""
        return self.steps

    def describe_steps(self) -> dict[str, Any]:
        """Children, bound and failure policy."""
        return {
            "max_workers": self.max_workers,
            "on_failure": self.on_failure.value,
            "steps": [c.describe() for c in self.steps],
        }

    def run(self, ctx: RunContext) -> None:
        """Run the children on a bounded thread pool and aggregate failures."""
        ctx.node_stats.status = "running"
        stop_starting = threading.Event()
        failures: dict[str, RunnerError] = {}

        def run_child(child: Pipeline) -> None:
            if stop_starting.is_set():
                ctx.stats.setdefault(child.name, StepStats()).status = "skipped"
                return
            try:
                child.run(ctx.child(child.name))
            except BaseException:
                if self.on_failure is FailurePolicy.FAIL_FAST:
                    stop_starting.set()
                raise

        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix=ctx.node) as pool:
            futures = {
                pool.submit(contextvars.copy_context().run, run_child, child): child
                for child in self.steps
            }
            for future, child in futures.items():
                exc = future.exception()
                if exc is None:
                    continue
                if not isinstance(exc, RunnerError):
                    exc = FatalError(f"{type(exc).__name__}: {exc}", pipeline=child.name)
                failures[child.name] = exc
        if not failures:
            ctx.node_stats.status = "succeeded"
            return
        ctx.node_stats.status = "failed"
        if len(failures) == 1:
            raise next(iter(failures.values()))
        if all(isinstance(e, InterruptedRunError) for e in failures.values()):
            raise next(iter(failures.values()))
        summary = "; ".join(f"{name}: {err}" for name, err in failures.items())
        error_type = (
            RetriableError
            if all(isinstance(e, RetriableError) for e in failures.values())
            else FatalError
        )
        raise error_type(
            f"{len(failures)} of {len(self.steps)} parallel children failed: {summary}",
            pipeline=ctx.node,
        )


class ConditionalPipeline(Pipeline):
    """A predicate on the run context picks which child runs."""

    kind = "conditional"

    def __init__(
        self,
        spec: PipelineSpec,
        when: Callable[[RunContext], Hashable],
        branches: Mapping[Hashable, Pipeline],
        default: Pipeline | None,
    ) -> None:
        super().__init__(spec)
        self.when = when
        self.branches = dict(branches)
        self.default = default

    def children(self) -> Sequence[Pipeline]:
        """Every branch (and the default)."""
        extra = [self.default] if self.default is not None else []
        return [*self.branches.values(), *extra]

    def describe_steps(self) -> dict[str, Any]:
        """The predicate and the branches."""
        return {
            "when": getattr(self.when, "__name__", repr(self.when)),
            "branches": {str(k): c.describe() for k, c in self.branches.items()},
            "default": self.default.describe() if self.default else None,
        }

    def run(self, ctx: RunContext) -> None:
        """Evaluate the predicate and run the chosen branch (or nothing)."""
        try:
            key = self.when(ctx)
        except Exception as exc:
            raise FatalError(
                f"condition {getattr(self.when, '__name__', 'when')!r} raised "
                f"{type(exc).__name__}: {exc}",
                pipeline=ctx.node,
                window=str(ctx.window),
            ) from exc
        branch = self.branches.get(key, self.default)
        ctx.node_stats.branch = branch.name if branch else None
        ctx.log.info(
            "condition evaluated", node=ctx.node, value=str(key), branch=ctx.node_stats.branch
        )
        if branch is None:
            ctx.node_stats.status = "succeeded"
            return
        ctx.node_stats.status = "running"
        try:
            branch.run(ctx.child(branch.name))
        except RunnerError:
            ctx.node_stats.status = "failed"
            raise
        ctx.node_stats.status = "succeeded"


def check_tree(root: Pipeline) -> None:
    """Reject a composition whose nodes share a name (stats and logs key on it)."""
    seen: set[str] = set()

    def visit(node: Pipeline) -> None:
        if node.name in seen:
            raise PipelineDefinitionError(
                f"pipeline {root.name!r}: the name {node.name!r} is used by more than one step"
            )
        seen.add(node.name)
        for child in node.children():
            visit(child)

    visit(root)
