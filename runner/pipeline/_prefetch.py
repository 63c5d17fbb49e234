"""A flow's producer thread: extract and transform ahead of the loader, bounded.

Part of :mod:`runner.pipeline.kinds` (``FlowPipeline.run`` consumes what this produces);
apart because the thread's life (start, stop between batches, close, join) is its own
concern.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

from runner.batches import as_batch, to_batches
from runner.pipeline.steps import Step

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.context import RunContext
    from runner.pipeline.kinds import FlowPipeline

__all__ = ["PREFETCH_BATCHES", "Failure", "Prefetch", "Produced"]

#: Batches extracted and transformed ahead of the loader (bounds the memory of a flow to
#: this many batches, plus the one being produced and the one being loaded).
PREFETCH_BATCHES = 2


@dataclass(frozen=True)
class Failure:
    """An exception of the producing thread, with the step that raised it.

    ``raw_rows`` is set when the batch had been extracted (the statistics count it).
    """

    step: Step
    error: BaseException
    raw_rows: int | None = None

    def reraise(self) -> NoReturn:
        """Raise the producer's exception in the consuming thread."""
        raise self.error


Produced: TypeAlias = "tuple[int, pa.RecordBatch | None] | Failure"


class Prefetch:
    """Extract and transform on a background thread, in order, into a bounded queue.

    Items are ``(raw_rows, batch)`` (``batch`` None when a transform dropped it) or one
    final :class:`Failure`.  Leaving the context, normally or by an exception, stops the
    producer between batches, closes the extractor's iterator in the producer's own thread
    and joins it, so no thread outlives the run.  The producer runs in a copy of the
    caller's context variables (the run's log binding).
    """

    def __init__(self, flow: FlowPipeline, ctx: RunContext) -> None:
        self._flow = flow
        self._ctx = ctx
        self._queue: queue.Queue[Produced | None] = queue.Queue(maxsize=PREFETCH_BATCHES)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._produce,),
            name=f"{ctx.node}-extract",
            daemon=True,
        )

    def __enter__(self) -> Iterator[Produced]:
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

    def _items(self) -> Iterator[Produced]:
        while (item := self._queue.get()) is not None:
            yield item
            if isinstance(item, Failure):
                return

    def _put(self, item: Produced | None) -> bool:
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
            self._put(Failure(step, exc, raw_rows))
        finally:
            for iterator in (batches, source):
                close = getattr(iterator, "close", None)
                if close is not None:
                    with suppress(Exception):  # the run's outcome is already decided
                        close()
