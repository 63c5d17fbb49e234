"""Opening the embedded engine (chDB) with one clear error for each way it fails.

chDB admits one process per warehouse directory and needs to write to it even to read.
When it cannot open the directory it prints its own diagnostic straight to file
descriptor 2 and raises a generic "Error initializing EmbeddedServer".  The diagnostic is
captured here, so the operator sees one line saying what is wrong: the directory is in
use by another runner process (busy, exit 5), it is not writable (configuration, exit 3),
or something else (not ready, exit 4, with the engine's own words).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from runner.errors import ConfigError, NotReadyError, RunnerError, WarehouseBusyError

if TYPE_CHECKING:
    from pathlib import Path

_BUSY_MARKERS = ("Another server instance in same directory", "Cannot lock file")
_READ_ONLY_MARKERS = ("Permission denied", "Read-only file system", "errno: 13", "errno: 30")


def open_embedded(path: Path) -> Any:
    """A clickhouse-connect client on the chDB directory ``path``."""
    import clickhouse_connect
    from clickhouse_connect.driver import exceptions as ch

    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _not_writable(path, exc.strerror or str(exc)) from None
    with _fd2_captured() as captured:
        try:
            client = clickhouse_connect.get_client(interface="chdb", path=str(path))
        except ch.Error as exc:
            failure: ch.Error | None = exc
        else:
            failure = None
    if failure is None:
        if captured.text:  # nothing of the engine's is hidden when it opened fine
            sys.stderr.write(captured.text)
        return client
    raise _explained(path, captured.text, failure) from None


def _explained(path: Path, diagnostic: str, exc: Exception) -> RunnerError:
    """The one error that says why ``path`` could not be opened."""
    if any(marker in diagnostic for marker in _BUSY_MARKERS):
        return WarehouseBusyError(
            f"the embedded warehouse {path} is in use by another runner process (chDB lets "
            "one process open a warehouse directory at a time); wait for it to finish"
        )
    if any(marker in diagnostic for marker in _READ_ONLY_MARKERS) or not os.access(path, os.W_OK):
        reason = "read-only file system" if "Read-only" in diagnostic else "permission denied"
        return _not_writable(path, reason)
    detail = _first_code_line(diagnostic) or str(exc).strip().splitlines()[0]
    return NotReadyError(f"cannot open the embedded warehouse {path}: {detail}")


def _not_writable(path: Path, reason: str) -> ConfigError:
    return ConfigError(
        f"the embedded warehouse {path} is not writable ({reason}): chDB writes to its "
        "directory even to read; give this user write access, or set RUNNER_WAREHOUSE_URL "
        "to a writable directory"
    )


def _first_code_line(diagnostic: str) -> str:
    return next((line.strip() for line in diagnostic.splitlines() if "Code:" in line), "")


class _Captured:
    text = ""


@contextmanager
def _fd2_captured() -> Iterator[_Captured]:
    """Send what the process writes to descriptor 2 into a temporary file meanwhile."""
    captured = _Captured()
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield captured
            finally:
                os.dup2(saved, 2)
                sink.seek(0)
                captured.text = sink.read().decode("utf-8", errors="replace")
    finally:
        os.close(saved)
