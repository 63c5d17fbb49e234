"""One exception tree for the whole framework, and the process exit codes it maps to.

Every error the CLI can meet derives from :class:`RunnerError`, so the CLI catches one
type, prints one line and exits with the code the error class carries.  The split that
matters to Kubernetes is fatal versus retriable: a Job should retry a run that met a
flaky network, and should not retry one that met a typo in its settings.

::

    RunnerError                       exit 1
    ├── UsageError                    exit 2  a command-line value that cannot be used
    ├── ConfigError                   exit 3  bad settings, project files, migration files
    │   ├── PipelineDefinitionError   exit 3  a pipeline module that cannot be used
    │   └── PipelineNotFoundError     exit 3  no module for the requested name
    ├── NotReadyError                 exit 4  warehouse unreachable / schema behind
    │   └── DatabaseMissingError      exit 4  the database does not exist (not migrated yet)
    ├── AlreadyRunningError           exit 5  another run holds the lock
    │   └── WarehouseBusyError        exit 5  another process has the embedded warehouse open
    ├── InterruptedRunError           exit 130 SIGTERM / SIGINT, stopped between batches
    └── PipelineError                 exit 1  a step of a run failed
        ├── FatalError                exit 1  retrying will not help (bad data, bad SQL)
        │   ├── ValidationFailedError exit 1  too many rows failed validation
        │   └── CheckFailedError      exit 1  a data check declared ``on_fail="fail"`` failed
        └── RetriableError            exit 75 transient (network, 5xx, ClickHouse overload)
            └── WarehouseUnavailableError exit 75
                └── OutcomeUnknownError   exit 75 a write was sent, its answer lost: not re-sent

``PipelineError`` carries the pipeline, step and window it happened in, so the single
line the operator sees says where to look.  That line goes through :func:`printable`,
which also scrubs secrets (:mod:`runner.redaction`), the same scrubber as the logs.
``EXIT_CODES`` describes every code once; the README's table and ``runner --help`` are
checked against it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

from runner.redaction import scrub_text

# Control characters (line breaks, terminal escapes) that hostile input may put in a message.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` as one line fit for a terminal: secrets scrubbed, control characters escaped."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode(), scrub_text(text))


def error_line(exc: BaseException) -> str:
    """The one line the CLI prints on stderr for ``exc``."""
    return f"error: {printable(str(exc))}"


class ExitCode(IntEnum):
    """Process exit codes of ``runner``; documented in the README."""

    OK = 0
    FAILED = 1
    USAGE = 2
    CONFIG = 3
    NOT_READY = 4
    ALREADY_RUNNING = 5
    TEMPFAIL = 75
    INTERRUPTED = 130


@dataclass(frozen=True)
class ExitCodeDoc:
    """What one exit code means and what Kubernetes should do about it."""

    meaning: str
    kubernetes: str
    short: str


#: The one description of every exit code: ``runner --help`` prints it and a test checks
#: the README's table against it (and against the exception tree).
EXIT_CODES: dict[ExitCode, ExitCodeDoc] = {
    ExitCode.OK: ExitCodeDoc("success, or nothing to do", "—", "ok, or nothing to do"),
    ExitCode.FAILED: ExitCodeDoc(
        "failed: a run (bad data, bad SQL, a bug in a step), a `runner query`, an unhealthy "
        "`runner health`, a stale `runner render --check`",
        "not retry blindly",
        "run failed (bad data, bad SQL, a bug)",
    ),
    ExitCode.USAGE: ExitCodeDoc(
        "command-line usage error: an unknown option, a bad `--start`/`--end` (or one without "
        "the other, or outside 1900 to 2299), `--step`, `--param`; a write in `runner query` "
        "without `--write`; `runner migrate resolve` without `--done` or `--not-done`",
        "fix the manifest",
        "usage error (fix the command)",
    ),
    ExitCode.CONFIG: ExitCodeDoc(
        "configuration error: settings, a pipeline file (or no file for the name), "
        "a cron string, a migration file or name; a migration statement only "
        "`runner migrate resolve` can settle; an embedded warehouse that is not writable",
        "fix and redeploy",
        "configuration error (settings, pipeline file, cron, migration)",
    ),
    ExitCode.NOT_READY: ExitCodeDoc(
        "not ready: warehouse unreachable or database missing (`runner migrate` not run)",
        "retry later",
        "not ready (warehouse unreachable, schema behind)",
    ),
    ExitCode.ALREADY_RUNNING: ExitCodeDoc(
        "already running or busy: a lock held by another run, or the embedded warehouse open "
        "in another runner process",
        "skip",
        "already running or busy (lock held, embedded warehouse open elsewhere)",
    ),
    ExitCode.TEMPFAIL: ExitCodeDoc(
        "transient failure (network, 5xx, ClickHouse overload)",
        "retry",
        "transient failure (a retry may succeed)",
    ),
    ExitCode.INTERRUPTED: ExitCodeDoc(
        "interrupted by SIGTERM/SIGINT: a run stopped between batches, any other wait at "
        "once, locks released",
        "retry",
        "interrupted (SIGTERM/SIGINT)",
    ),
}


class RunnerError(Exception):
    """Root of every error the framework raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILED


class UsageError(RunnerError):
    """A value given on the command line cannot be used; fix the command, do not retry.

    Raised by the domain without naming a flag (``'tomorrow' is not an ISO 8601 date``);
    the CLI, which knows which flag carried the value, adds its name.
    """

    exit_code = ExitCode.USAGE


class ConfigError(RunnerError):
    """Settings or project files are wrong; fix them, do not retry."""

    exit_code = ExitCode.CONFIG


class PipelineDefinitionError(ConfigError):
    """A pipeline module cannot be imported or declares an invalid pipeline."""


class PipelineNotFoundError(ConfigError):
    """No pipeline module exists for the requested name."""


class NotReadyError(RunnerError):
    """The warehouse cannot be reached or its schema is behind the code."""

    exit_code = ExitCode.NOT_READY


class DatabaseMissingError(NotReadyError):
    """The target database does not exist yet: `runner migrate` has not created it."""


class AlreadyRunningError(RunnerError):
    """Another run of the same pipeline (and window) holds the lock."""

    exit_code = ExitCode.ALREADY_RUNNING


class WarehouseBusyError(AlreadyRunningError):
    """Another runner process has the embedded warehouse open (chDB admits one per path)."""


class InterruptedRunError(RunnerError):
    """The run was asked to stop (SIGTERM/SIGINT) and stopped between batches."""

    exit_code = ExitCode.INTERRUPTED


class PipelineError(RunnerError):
    """A step of a run failed; carries where it happened."""

    retriable: bool = False

    def __init__(
        self,
        message: str,
        *,
        pipeline: str | None = None,
        step: str | None = None,
        window: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.pipeline = pipeline
        self.step = step
        self.window = window

    def with_context(
        self, *, pipeline: str | None = None, step: str | None = None, window: str | None = None
    ) -> PipelineError:
        """Fill in context that the raiser did not know, keeping what it did."""
        self.pipeline = self.pipeline or pipeline
        self.step = self.step or step
        self.window = self.window or window
        return self

    def __str__(self) -> str:
        where = [
            f"{label}={value}"
            for label, value in (
                ("pipeline", self.pipeline),
                ("step", self.step),
                ("window", self.window),
            )
            if value
        ]
        return f"{self.message} [{' '.join(where)}]" if where else self.message


class FatalError(PipelineError):
    """Retrying the same input will fail the same way."""


class ValidationFailedError(FatalError):
    """More rows failed validation than the policy allows."""


class CheckFailedError(FatalError):
    """A data check of the pipeline failed after the load (runner.pipeline.checks)."""


class RetriableError(PipelineError):
    """A transient cause; the same run may succeed later."""

    retriable = True
    exit_code = ExitCode.TEMPFAIL


class WarehouseUnavailableError(RetriableError):
    """ClickHouse did not answer, or answered with a transient error."""


class OutcomeUnknownError(WarehouseUnavailableError):
    """A write reached the server but its answer was lost (reset, timeout): it may have run.

    Sending it again could apply it twice (an insert without a deduplication token, an
    ``INSERT`` in a migration), so it is not retried in the process; the run fails as
    transient and a re-run of the window (which every load mode makes exact) follows.
    """
