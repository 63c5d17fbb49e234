"""Any Python iterable or generator as a source."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from runner.errors import FatalError
from runner.pipeline.steps import Extractor

if TYPE_CHECKING:
    from runner.pipeline.context import RunContext


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


def from_iterable(items: Iterable[Any] | Callable[[], Iterable[Any]]) -> IterableSource:
    """A source over ``items`` (or over what ``items()`` returns, called once per run)."""
    return IterableSource(items)
