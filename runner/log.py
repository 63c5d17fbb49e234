"""Structured logging: JSON lines on stdout for log aggregation, a console view on a TTY.

Run identity (pipeline, run_id, window) is bound through structlog's context variables,
so every line of a run carries it without each call passing it.  Secrets are redacted
before rendering, whatever the key they hide behind.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import IO, Any, TextIO

import structlog
from pydantic import SecretStr

from runner.settings import LogFormat, Settings

REDACTED = "**********"
_SECRET_KEYS = ("password", "secret", "token", "authorization", "api_key")


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if isinstance(value, SecretStr) or (
            isinstance(value, str) and any(word in key.lower() for word in _SECRET_KEYS)
        ):
            event[key] = REDACTED
    return event


_LEADING_KEYS = ("ts", "level", "event", "pipeline", "run_id", "window_start", "window_end")


def _leading_keys_first(_: Any, __: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    """Put time, level, message and run identity first, so lines read well in a terminal."""
    return {**{k: event[k] for k in _LEADING_KEYS if k in event}, **event}


class RunLogFile:
    """Copies every rendered event of a run, as JSON, into a per-run ``.jsonl`` file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._file: IO[str] | None = None

    def open(self, path: Path) -> None:
        """Start copying into ``path`` (parents created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._file = path.open("a", encoding="utf-8")

    def close(self) -> None:
        """Stop copying."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __call__(
        self, _: Any, __: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Structlog processor: write the event, pass it on unchanged."""
        if self._file is not None:
            line = json.dumps(event, default=str, ensure_ascii=False)
            with self._lock:
                if self._file is not None:
                    self._file.write(line + "\n")
                    self._file.flush()
        return event


def configure_logging(settings: Settings, stream: TextIO | None = None) -> RunLogFile:
    """Configure structlog for this process; returns the per-run file tee."""
    out = stream or sys.stdout
    use_json = settings.log_format == LogFormat.JSON or (
        settings.log_format == LogFormat.AUTO and not out.isatty()
    )
    tee = RunLogFile()
    renderer: Any = (
        structlog.processors.JSONRenderer(default=str, ensure_ascii=False)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            _redact,
            structlog.processors.format_exc_info,
            _leading_keys_first,
            tee,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.log_level.upper()]
        ),
        # Without an explicit stream, each logger looks up sys.stdout when it is created.
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    return tee


def get_logger(**bound: Any) -> Any:
    """A logger with extra fields bound (structlog's BoundLogger)."""
    return structlog.get_logger("runner").bind(**bound)
