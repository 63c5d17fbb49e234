"""Parsing the next blocks of a text file on worker threads while the reader hands one on.

pyarrow's streaming JSON reader parsed blocks ahead on its thread pool; reading blocks of
whole lines ourselves (``_file_text``) would lose that and take about twice as long on two
free cores.  :class:`ParseAhead` gives it back: blocks are handed to a small pool as they
are read and their outcomes (a table and its line count, or the parser's error) come
back in file order.
Only a parser whose types are fixed parses ahead (``LineParser.settled``): an outcome
parsed with a schema that changed since (``settle`` during a line-by-line read) is
dropped and the block parsed again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.tools.extract._file_blocks import Count

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class Outcome:
    """A block parsed at once: its table or the parser's error, and the parser's state."""

    table: pa.Table | None
    error: Exception | None
    state: object  # what the parser parsed with; a different state makes it stale
    count: Count | None = None  # the block's lines, if its rows are one per line


#: Parses a block at once: its table and, if its rows are one per line, its count.
Parse = Callable[[bytes], tuple["pa.Table", Count | None]]


class ParseAhead:
    """Blocks parsed by up to ``depth`` workers, handed back in the order given."""

    def __init__(self, depth: int, stack: ExitStack) -> None:
        self.depth = depth
        self._stack = stack
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[tuple[bytes, Future[Outcome]]] = deque()
        #: Why reading the file stopped early, raised once the blocks before are handed on.
        self.failure: Exception | None = None

    def submit(self, data: bytes, parse: Parse, state: object) -> Iterator[tuple[bytes, Outcome]]:
        """Parse ``data`` ahead; yield the blocks whose turn has come (all but ``depth``)."""
        if self._pool is None:
            # closed before the file is: a worker never reads a closed stream
            self._pool = ThreadPoolExecutor(self.depth, thread_name_prefix="runner-parse")
            self._stack.callback(self._pool.shutdown, wait=True, cancel_futures=True)
        self._pending.append((data, self._pool.submit(parsed, parse, data, state)))
        while len(self._pending) > self.depth:
            yield self._next()

    def drain(self) -> Iterator[tuple[bytes, Outcome]]:
        """Yield every block still parsing, in order."""
        while self._pending:
            yield self._next()

    def raise_failure(self) -> None:
        """Raise the read's failure, if there was one."""
        if self.failure is not None:
            raise self.failure

    def _next(self) -> tuple[bytes, Outcome]:
        data, future = self._pending.popleft()
        return data, future.result()


def parsed(parse: Parse, data: bytes, state: object) -> Outcome:
    """``data`` parsed (here, or on a worker), with the parser's error if it failed."""
    try:
        table, count = parse(data)
    except Exception as exc:  # noqa: BLE001 - handed back to be judged in file order
        return Outcome(None, exc, state)
    return Outcome(table, None, state, count)
