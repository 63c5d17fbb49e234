"""The run context: what every step of one run can see and use.

One context per pipeline node; children of composite pipelines get child contexts that
share the run's identity, window, cancellation flag and statistics, but open their own
warehouse connection (so parallel branches do not share a client).
"""

from __future__ import annotations

import base64
import json
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from runner.errors import FatalError, InterruptedRunError
from runner.state.watermarks import RunState

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.steps import Extractor
    from runner.pipeline.windows import Window
    from runner.settings import Settings
    from runner.warehouse.client import Warehouse

QUARANTINE_TABLE = "_quarantine"
#: Extracted batches a run remembers the position of (those in flight: prefetched,
#: being transformed, being loaded), to find the source records of quarantined rows.
SOURCE_BATCHES = 8


@runtime_checkable
class RejectSink(Protocol):
    """A step that keeps rows other steps reject, e.g. ``validate(on_error="skip")``.

    A flow hands its context the first of its transforms that is one (and says so with
    ``takes_rejected``); see :meth:`RunContext.reject`.
    """

    @property
    def takes_rejected(self) -> bool:
        """Whether this step, as configured, keeps rejected rows instead of failing."""

    def take_rejected(
        self, ctx: RunContext, rows: list[dict[str, Any]], reasons: list[str], step: str
    ) -> None:
        """Store rejected rows (and count them against the step's budget)."""

    def check_rejected(self, ctx: RunContext) -> None:
        """At the end of the extraction: fail if the rejected rows exceed the budget."""


@dataclass
class StepStats:
    """Row counts of one pipeline node."""

    rows_extracted: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    batches: int = 0
    #: Arrow bytes (in memory, uncompressed) of the batches handed to the loader
    bytes_loaded: int = 0
    status: str = "pending"
    branch: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """For logs and JSON output (empty fields left out)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class RunResources:
    """Things opened during a run that must be closed at its end, whatever happens."""

    connect: Callable[[], Warehouse]
    opened: list[Warehouse] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def open_warehouse(self) -> Warehouse:
        """Open a connection and remember it for closing."""
        warehouse = self.connect()
        with self.lock:
            self.opened.append(warehouse)
        return warehouse

    def close(self) -> None:
        """Close every connection opened by the run."""
        with self.lock:
            for warehouse in self.opened:
                warehouse.close()
            self.opened.clear()


class SourceBatches:
    """The latest extracted batches of a flow and the run-row number of their first row.

    Held by weak reference: remembering a batch never keeps it alive.
    """

    def __init__(self, extractor: Extractor) -> None:
        self.extractor = extractor
        self._lock = threading.Lock()
        self._recent: deque[tuple[weakref.ref[pa.RecordBatch], int]] = deque(maxlen=SOURCE_BATCHES)

    def note(self, batch: pa.RecordBatch, first_row: int) -> None:
        """Remember that ``batch`` starts at run-row ``first_row``."""
        with self._lock:
            self._recent.append((weakref.ref(batch), first_row))

    def first_row(self, batch: pa.RecordBatch) -> int | None:
        """The run-row number of ``batch``'s first row, if it is an extracted batch."""
        with self._lock:
            for ref, first in self._recent:
                if ref() is batch:
                    return first
        return None


def _json_value(value: object) -> Any:
    """JSON for values ``json`` cannot write: ISO 8601 times, decimals as text, base64 bytes."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


class RunContext:
    """What a step knows about its run."""

    def __init__(
        self,
        *,
        pipeline: str,
        run_id: str,
        window: Window,
        settings: Settings,
        resources: RunResources,
        log: Any,
        params: Mapping[str, str] | None = None,
        dry_run: bool = False,
        cancel: threading.Event | None = None,
        stats: dict[str, StepStats] | None = None,
        node: str | None = None,
        state: RunState | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.node = node or pipeline
        self.run_id = run_id
        self.window = window
        self.settings = settings
        self.params: Mapping[str, str] = dict(params or {})
        self.dry_run = dry_run
        self.cancel = cancel or threading.Event()
        self.stats = stats if stats is not None else {}
        self.log = log
        self.state = state if state is not None else RunState({})
        self._resources = resources
        self._warehouse: Warehouse | None = None
        self._step_state: dict[int, dict[str, Any]] = {}
        self.sources: SourceBatches | None = None  # set by a flow for its extractor
        #: where rejected rows go (set by a flow from its transforms); None: the run fails
        self.reject_sink: RejectSink | None = None
        self.stats.setdefault(self.node, StepStats())

    @property
    def warehouse(self) -> Warehouse:
        """The warehouse connection of this node, opened on first use."""
        if self._warehouse is None:
            self._warehouse = self._resources.open_warehouse()
        return self._warehouse

    def open_warehouse(self) -> Warehouse:
        """Another connection for this run (closed at its end), e.g. for concurrent inserts."""
        return self._resources.open_warehouse()

    def step_state(self, step: object) -> dict[str, Any]:
        """Scratch space of one step for this run only.

        A pipeline object is shared by every run in a process (parallel backfill windows
        run it at once), so per-run state such as batch counters must live here, not on
        the step.
        """
        return self._step_state.setdefault(id(step), {})

    @property
    def batch_rows(self) -> int:
        """Upper bound on rows per batch."""
        return self.settings.batch_rows

    @property
    def node_stats(self) -> StepStats:
        """Statistics of this node."""
        return self.stats[self.node]

    def child(self, node: str) -> RunContext:
        """A context for a child pipeline of a composite."""
        return RunContext(
            pipeline=self.pipeline,
            run_id=self.run_id,
            window=self.window,
            settings=self.settings,
            resources=self._resources,
            log=self.log.bind(node=node),
            params=self.params,
            dry_run=self.dry_run,
            cancel=self.cancel,
            stats=self.stats,
            node=node,
            state=self.state,
        )

    def check_cancelled(self) -> None:
        """Raise if the run was asked to stop; called between batches."""
        if self.cancel.is_set():
            raise InterruptedRunError(
                f"run {self.run_id} of {self.pipeline} was interrupted and stopped between batches"
            )

    def source_records(
        self, batch: pa.RecordBatch, indices: Sequence[int]
    ) -> list[Mapping[str, Any] | None]:
        """The source's own records of rows ``indices`` of ``batch`` (None where unknown).

        Known only while ``batch`` is a batch the flow's extractor produced, unchanged,
        and the extractor can give its records (see ``Extractor.source_records``).  A
        record is only returned if it agrees with the row: every non-null value of the
        row has its key in the record.
        """
        found: list[Mapping[str, Any] | None] = [None] * len(indices)
        sources = self.sources
        first = sources.first_row(batch) if sources is not None else None
        if sources is None or first is None or not indices:
            return found
        import pyarrow as pa

        taken = batch.take(pa.array(list(indices), pa.int64()))
        try:
            records = sources.extractor.source_records(self, [first + i for i in indices], taken)
        except Exception as exc:  # noqa: BLE001 - an error path must not fail on its extras
            self.log.warning("source records not read", error=str(exc))
            return found
        names = taken.schema.names
        for position, index in enumerate(indices):
            record = records.get(first + index)
            held = (
                n
                for n, column in zip(names, taken.columns, strict=True)
                if column[position].is_valid
            )
            if isinstance(record, Mapping) and all(name in record for name in held):
                found[position] = record
        return found

    def quarantine(
        self, rows: Iterable[Mapping[str, Any]], reason: str | Iterable[str], step: str
    ) -> int:
        """Store rejected rows with their reason in the quarantine table; returns the count.

        ``reason`` is one reason for all rows or one per row.  Each row is stored as the
        given mapping holds it, as JSON (times in ISO 8601, decimals as text, bytes in
        base64); pass the source's own record (see :meth:`source_records`) when there is
        one, so the stored row has exactly the keys the source had.
        """
        import pyarrow as pa

        records = [json.dumps(dict(r), default=_json_value, ensure_ascii=False) for r in rows]
        if not records:
            return 0
        reasons = [reason] * len(records) if isinstance(reason, str) else list(reason)
        now = datetime.now(UTC)
        batch = pa.RecordBatch.from_pydict(
            {
                "pipeline": [self.pipeline] * len(records),
                "run_id": [self.run_id] * len(records),
                "step": [f"{self.node}.{step}"] * len(records),
                "window_start": pa.array(
                    [self.window.start] * len(records), pa.timestamp("ms", "UTC")
                ),
                "window_end": pa.array([self.window.end] * len(records), pa.timestamp("ms", "UTC")),
                "reason": reasons,
                "record": records,
                "quarantined_at": pa.array([now] * len(records), pa.timestamp("ms", "UTC")),
            }
        )
        self.warehouse.insert_arrow(QUARANTINE_TABLE, batch)
        self.node_stats.rows_quarantined += len(records)
        self.log.warning("rows quarantined", step=step, rows=len(records), table=QUARANTINE_TABLE)
        return len(records)

    def reject(
        self, rows: Sequence[Mapping[str, Any]], reason: str | Sequence[str], step: str
    ) -> int:
        """Rows a step cannot pass on (a line that does not parse, a time in no window).

        The flow decides what happens to them: with a ``validate(on_error="skip")`` step
        they go to the quarantine table and count toward its ``max_invalid``; otherwise
        the run fails with the first reason, which names the file, line and field.
        """
        records = [dict(row) for row in rows]
        if not records:
            return 0
        reasons = [reason] * len(records) if isinstance(reason, str) else list(reason)
        if self.reject_sink is None:
            raise FatalError(reasons[0])
        self.reject_sink.take_rejected(self, records, reasons, step)
        return len(records)
