"""Any Python iterable or generator as a source."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from runner.pipeline.steps import Extractor

if TYPE_CHECKING:
    from runner.pipeline.context import RunContext


class IterableSource(Extractor):
    """Yields the items of an iterable (rows, lists of rows, batches or tables).

    Pass a function returning an iterable (``from_iterable(lambda: gen())``) when the
    data must be produced afresh for each run; a plain generator can be read only once.
    """

    name = "iterable"

    def __init__(self, items: Iterable[Any] | Callable[[], Iterable[Any]]) -> None:
        self.items = items

    def extract(self, ctx: RunContext) -> Iterable[Any]:  # noqa: ARG002 - interface
        """Yield the items."""
        items = self.items() if callable(self.items) else self.items
        yield from items


def from_iterable(items: Iterable[Any] | Callable[[], Iterable[Any]]) -> IterableSource:
    """A source over ``items`` (or over what ``items()`` returns, called once per run)."""
    return IterableSource(items)
