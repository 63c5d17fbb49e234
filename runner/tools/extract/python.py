"""Any Python iterable or generator as a source.

The source itself (``IterableSource``) lives with the step interfaces in
runner.pipeline.steps, because the pipeline layer turns any iterable handed to
``etl(extract=...)`` into one; this module gives it its public name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from runner.pipeline.steps import IterableSource

__all__ = ["IterableSource", "from_iterable"]


def from_iterable(items: Iterable[Any] | Callable[[], Iterable[Any]]) -> IterableSource:
    """A source over ``items`` (or over what ``items()`` returns, called once per run).

    ``items`` is an iterable of rows (dicts), lists of rows, Arrow batches or tables; or a
    function returning one, called afresh by every run (a generator can be read once).
    """
    return IterableSource(items)
