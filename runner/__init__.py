"""pipeline-runner: ETL/ELT pipelines into ClickHouse, one Kubernetes Job per run.

What a pipeline author imports.  Tools are imported lazily on first access, so
``import runner`` (and ``runner --help``) stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from runner.errors import (
    ConfigError,
    FatalError,
    PipelineError,
    RetriableError,
    RunnerError,
    ValidationFailedError,
)
from runner.pipeline.factory import conditional, el, etl, parallel, sequential

if TYPE_CHECKING:
    from runner.pipeline.context import RunContext
    from runner.pipeline.kinds import Pipeline
    from runner.pipeline.spec import Resources
    from runner.pipeline.steps import Extractor, Loader, Transformer
    from runner.pipeline.windows import Window
    from runner.tools.extract.clickhouse import clickhouse_query
    from runner.tools.extract.python import from_iterable
    from runner.tools.load.clickhouse import clickhouse_append, clickhouse_upsert
    from runner.tools.load.replace_window import clickhouse_replace_window

_LAZY = {
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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runner' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
