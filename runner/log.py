"""Structured logging: JSON lines on stdout for log aggregation, a console view on a TTY.

Run identity (pipeline, run_id, window) is bound through structlog's context variables,
so every line of a run carries it without each call passing it.  Every event goes through
the one scrubber (:mod:`runner.redaction`) after tracebacks are formatted and before it is
rendered or copied to the run's file, so no secret reaches stdout or ``RUNNER_LOG_DIR``.
Records of the standard ``logging`` module (urllib3, clickhouse-connect, kubernetes) are
routed through the same pipeline, and an uncaught exception becomes one line on stderr
and a scrubbed traceback in the log instead of a bare traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
from collections.abc import MutableMapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO

import structlog

from runner.errors import ConfigError, printable
from runner.redaction import REDACTED, scrub
from runner.settings import LogFormat, Settings

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["REDACTED", "RunLogFile", "configure_logging", "get_logger"]


def _scrub(_: Any, __: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    """Structlog processor: every value scrubbed, secret-keyed ones masked (any depth)."""
    scrubbed: dict[str, Any] = scrub(event)
    return scrubbed


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
        """Start copying into ``path`` (parents created); ConfigError when that fails."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            file = path.open("a", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"RUNNER_LOG_DIR: cannot write the run log {path}: {exc.strerror or exc}"
            ) from None
        with self._lock:
            self._file = file

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
                    self._write(line)
        return event

    def _write(self, line: str) -> None:
        """Append one line; a file that stops taking lines (disk full) is dropped, not fatal."""
        assert self._file is not None  # noqa: S101 - the caller checked, under the lock
        try:
            self._file.write(line + "\n")
            self._file.flush()
        except OSError as exc:
            name = self._file.name
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
            sys.stderr.write(
                f"warning: RUNNER_LOG_DIR: stopped writing the run log {name}: "
                f"{exc.strerror or exc}\n"
            )


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
            structlog.processors.format_exc_info,
            _scrub,  # after the traceback is text, before anything is written
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
    _route_stdlib_logging(settings.log_level)
    _install_last_resort()
    return tee


class _ToStructlog(logging.Handler):
    """Hands records of the standard ``logging`` module to structlog (so they are scrubbed)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            structlog.get_logger("runner").log(
                record.levelno,
                record.getMessage(),
                logger=record.name,
                exc_info=record.exc_info or False,
            )
        except Exception:  # noqa: BLE001 - logging must never raise, nor print a traceback
            with contextlib.suppress(Exception):
                structlog.get_logger("runner").warning(
                    "unformattable log record", logger=record.name, template=str(record.msg)
                )


def _route_stdlib_logging(level: str) -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _ToStructlog)]:
        root.removeHandler(handler)
    root.addHandler(_ToStructlog())
    root.setLevel(logging.getLevelNamesMapping()[level.upper()])


def _install_last_resort() -> None:
    """An exception nobody caught: its scrubbed traceback to the log, one line to stderr."""

    def on_uncaught(
        kind: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, exc, tb)
            return
        get_logger().critical("unexpected error", exc_info=(kind, exc, tb))
        sys.stderr.write(f"error: internal error: {printable(f'{kind.__name__}: {exc}')}\n")

    def on_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or issubclass(args.exc_type, SystemExit):
            return
        get_logger().error(
            "unexpected error in a thread",
            thread=args.thread.name if args.thread else None,
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )

    sys.excepthook = on_uncaught
    threading.excepthook = on_thread


def get_logger(**bound: Any) -> Any:
    """A logger with extra fields bound (structlog's BoundLogger)."""
    return structlog.get_logger("runner").bind(**bound)
