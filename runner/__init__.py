"""pipeline-runner: ETL/ELT pipelines into ClickHouse, one Kubernetes Job per run.

What a pipeline author imports.  Tools are imported lazily on first access, so
``import runner`` (and ``runner --help``) stays cheap.  Every tool has a short home by
kind: ``runner.extract``, ``runner.transform`` and ``runner.load``; the most used ones
are here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner._lazy import lazy_names
from runner.errors import (
    ConfigError,
    FatalError,
    PipelineError,
    RetriableError,
    RunnerError,
    ValidationFailedError,
)

if TYPE_CHECKING:
    from runner.pipeline.context import RunContext
    from runner.pipeline.factory import conditional, el, etl, parallel, sequential
    from runner.pipeline.kinds import Pipeline
    from runner.pipeline.spec import Resources
    from runner.pipeline.steps import Extractor, Loader, Transformer
    from runner.pipeline.windows import Window
    from runner.tools.extract.clickhouse import clickhouse_query
    from runner.tools.extract.python import from_iterable
    from runner.tools.load.clickhouse import clickhouse_append, clickhouse_upsert
    from runner.tools.load.replace_window import clickhouse_replace_window

_FACTORY = "runner.pipeline.factory"
_LAZY = {
    "etl": _FACTORY,
    "el": _FACTORY,
    "sequential": _FACTORY,
    "parallel": _FACTORY,
    "conditional": _FACTORY,
    "RunContext": "runner.pipeline.context",
    "Pipeline": "runner.pipeline.kinds",
    "Resources": "runner.pipeline.spec",
    "Extractor": "runner.pipeline.steps",
    "Transformer": "runner.pipeline.steps",
    "Loader": "runner.pipeline.steps",
    "Window": "runner.pipeline.windows",
    "clickhouse_query": "runner.tools.extract.clickhouse",
    "from_iterable": "runner.tools.extract.python",
    "clickhouse_append": "runner.tools.load.clickhouse",
    "clickhouse_upsert": "runner.tools.load.clickhouse",
    "clickhouse_replace_window": "runner.tools.load.replace_window",
}

__all__ = [
    "ConfigError",
    "Extractor",
    "FatalError",
    "Loader",
    "Pipeline",
    "PipelineError",
    "Resources",
    "RetriableError",
    "RunContext",
    "RunnerError",
    "Transformer",
    "ValidationFailedError",
    "Window",
    "clickhouse_append",
    "clickhouse_query",
    "clickhouse_replace_window",
    "clickhouse_upsert",
    "conditional",
    "el",
    "etl",
    "from_iterable",
    "parallel",
    "sequential",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
