"""The three step interfaces (extract, transform, load) and adapters for plain functions.

Tools subclass these; pipeline authors may instead pass plain functions, which are
wrapped here so the run loop only deals with one shape per step kind:

* extract:   ``fn(ctx) -> Iterable[batch-like]`` (or ``fn()``)
* transform: ``fn(batch, ctx) -> batch-like | None`` (or ``fn(batch)``)
* load:      ``fn(batch, ctx) -> None`` (or ``fn(batch)``), called once per batch

A plain iterable (a list of rows, a generator) stands for an extractor too
(``IterableSource``); ``runner.extract.from_iterable`` is its public name.
"""

from __future__ import annotations

import inspect
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runner.errors import FatalError, PipelineDefinitionError

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.context import RunContext


class Step(ABC):  # noqa: B024 - a shared base, not an interface
    """Common naming for steps; the name appears in logs, stats and errors."""

    name: str = ""

    @property
    def step_name(self) -> str:
        """The name shown for this step."""
        return self.name or type(self).__name__

    def describe(self) -> str:
        """One line for ``runner show`` and dry runs."""
        return self.step_name


class Extractor(Step):
    """Produces the run's data as a stream of batch-likes."""

    @abstractmethod
    def extract(self, ctx: RunContext) -> Iterable[Any]:
        """Yield RecordBatches, Tables, lists of row dicts or row dicts."""

    def source_records(
        self, ctx: RunContext, rows: Sequence[int], held: pa.RecordBatch
    ) -> Mapping[int, Any]:
        """Records as the source held them, by row number in this run (0-based, in order).

        ``held`` holds the same rows as this extractor yielded them, in the order of
        ``rows`` (so a record can be checked against its row).  Used only to quarantine a
        row as it really was: an Arrow batch cannot tell a key the record lacked from a
        null one.  Rows the extractor cannot give, or cannot prove to be the right ones,
        are left out (the default gives none, and the row is stored as the batch holds it).
        """
        del ctx, rows, held
        return {}


class Transformer(Step):
    """Turns one batch into another (or drops it by returning None)."""

    @abstractmethod
    def transform(self, batch: pa.RecordBatch, ctx: RunContext) -> Any:
        """Return a batch-like, or None to drop the batch."""


class Loader(Step):
    """Writes batches somewhere; told when the stream starts and how it ended."""

    def open(self, ctx: RunContext) -> None:
        """Prepare for writing (check the target exists, open files...)."""

    @abstractmethod
    def write(self, batch: pa.RecordBatch, ctx: RunContext) -> None:
        """Write one batch."""

    def close(self, ctx: RunContext, *, success: bool) -> None:
        """Finish writing; ``success`` is False when the run failed or was interrupted."""

    def rows_written(self, ctx: RunContext) -> int | None:
        """Rows this run's writes made visible so far, as the loader confirmed them.

        The flow records this as the run's ``rows_loaded``.  None (the default, e.g. for
        plain functions) counts every row handed to :meth:`write` once the call returned.
        Loaders that buffer (ClickHouse inserts) or publish at the end (files, replace
        window) count only what landed, so a failed or cancelled run reports what is
        really there.
        """
        del ctx
        return None


class IterableSource(Extractor):
    """Yields the items of an iterable (rows, lists of rows, batches or tables).

    Pass a function returning an iterable (``from_iterable(lambda: gen())``) when the
    data must be produced afresh for each run; a plain generator (or any iterator) can
    be read only once, so a second run of the same pipeline object (a retried window, a
    parallel backfill window) fails instead of silently loading nothing.
    """

    name = "iterable"

    def __init__(self, items: Iterable[Any] | Callable[[], Iterable[Any]]) -> None:
        self.items = items
        # An iterator shared by every run of the pipeline object: who read it first.
        self._one_shot = not callable(items) and isinstance(items, Iterator)
        self._lock = threading.Lock()
        self._taken_by: str | None = None

    def extract(self, ctx: RunContext) -> Iterable[Any]:
        """Yield the items."""
        if self._one_shot:
            with self._lock:
                taken_by, self._taken_by = self._taken_by, self._taken_by or ctx.run_id
            if taken_by is not None and taken_by != ctx.run_id:
                raise FatalError(
                    f"the source of {ctx.node} is an iterator that run {taken_by} already "
                    "read; pass a function returning a fresh iterable, e.g. "
                    "from_iterable(lambda: rows()), so every run reads its own data"
                )
        items = self.items() if callable(self.items) else self.items
        yield from items


def _wants_context(fn: Callable[..., Any], data_args: int, role: str) -> bool:
    """Whether ``fn`` takes the run context after its ``data_args`` data arguments."""
    try:
        signature = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: assume data only
        return False
    if any(p.kind is p.VAR_POSITIONAL for p in signature):
        return False  # fn(*args): give it the data only
    params = [p for p in signature if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(params) == data_args:
        return False
    if len(params) == data_args + 1:
        return True
    expected = ["ctx"] if data_args == 0 else ["batch", "ctx"]
    raise PipelineDefinitionError(
        f"{role} function {getattr(fn, '__name__', fn)!r} takes {len(params)} positional "
        f"arguments; expected ({', '.join(expected)}) or ({', '.join(expected[:-1])})"
    )


class FunctionExtractor(Extractor):
    """A plain function as an extractor."""

    def __init__(self, fn: Callable[..., Iterable[Any]]) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", "extract")
        self._with_ctx = _wants_context(fn, 0, "extract")

    def extract(self, ctx: RunContext) -> Iterable[Any]:
        """Call the function."""
        return self.fn(ctx) if self._with_ctx else self.fn()


class FunctionTransformer(Transformer):
    """A plain function as a transformer."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", "transform")
        self._with_ctx = _wants_context(fn, 1, "transform")

    def transform(self, batch: pa.RecordBatch, ctx: RunContext) -> Any:
        """Call the function."""
        return self.fn(batch, ctx) if self._with_ctx else self.fn(batch)


class FunctionLoader(Loader):
    """A plain function as a loader, called once per batch."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.name = getattr(fn, "__name__", "load")
        self._with_ctx = _wants_context(fn, 1, "load")

    def write(self, batch: pa.RecordBatch, ctx: RunContext) -> None:
        """Call the function."""
        if self._with_ctx:
            self.fn(batch, ctx)
        else:
            self.fn(batch)


def as_extractor(obj: object) -> Extractor:
    """Accept an Extractor, a function, or a plain iterable of batch-likes."""
    if isinstance(obj, Extractor):
        return obj
    if callable(obj):
        return FunctionExtractor(obj)
    if isinstance(obj, Iterable) and not isinstance(obj, str | bytes):
        return IterableSource(obj)
    raise PipelineDefinitionError(
        f"extract must be an Extractor, a function or an iterable, not {type(obj).__name__}"
    )


def as_transformer(obj: object) -> Transformer:
    """Accept a Transformer or a function."""
    if isinstance(obj, Transformer):
        return obj
    if callable(obj):
        return FunctionTransformer(obj)
    raise PipelineDefinitionError(
        f"transform must be a Transformer or a function, not {type(obj).__name__}"
    )


def as_loader(obj: object) -> Loader:
    """Accept a Loader or a function."""
    if isinstance(obj, Loader):
        return obj
    if callable(obj):
        return FunctionLoader(obj)
    raise PipelineDefinitionError(f"load must be a Loader or a function, not {type(obj).__name__}")
