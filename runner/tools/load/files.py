"""Writing a run's rows to one JSON Lines or Parquet file, atomically.

Rows go to a hidden temporary file next to the target, which is renamed into place only
when the run succeeds: readers never see a half-written file, and a failed run leaves
nothing behind (and an earlier file of the same name untouched).  A successful re-run
of the same window replaces the file, so the load is idempotent per path.

The path may name the run with placeholders, e.g.
``exports/{pipeline}/{window_start}.parquet``: ``{pipeline}``, ``{run_id}``,
``{window_start}`` and ``{window_end}`` (UTC, formatted ``YYYYmmddTHHMMSS``).  A relative
path is taken from the working directory at run time; missing directories are created.

A loader object serves every run of its pipeline in the process (parallel backfill
windows run it at once), so each run's file lives in the run's step state.  Two runs of
this process never write one path at once (the second fails, naming the first), and a
run counts its rows as loaded only once its file is confirmed: the finished temporary
file is read back (Parquet: its footer; JSON Lines: its lines) and must hold every row
written, and after the rename the path must hold that very file.
"""

from __future__ import annotations

import os
import secrets
import string
import threading
from abc import abstractmethod
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from runner.errors import ConfigError, FatalError
from runner.pipeline.steps import Loader
from runner.tools.load._options import ParquetOptions
from runner.tools.load._writers import FileWriter, JsonLinesFile, ParquetFile, fsync
from runner.tools.options import parse_options

if TYPE_CHECKING:
    import pyarrow as pa

    from runner.pipeline.context import RunContext

__all__ = [
    "FileLoader",
    "FileWriter",
    "JsonLinesLoader",
    "ParquetLoader",
    "write_jsonl",
    "write_parquet",
]

PLACEHOLDERS = ("pipeline", "run_id", "window_start", "window_end")
WINDOW_FORMAT = "%Y%m%dT%H%M%S"


def _check_template(path: str | os.PathLike[str]) -> str:
    """Validate the path and its placeholders at declaration time."""
    if not isinstance(path, str | os.PathLike):
        raise ConfigError(f"path must be a file path, not {type(path).__name__}")
    text = os.fspath(path)
    if not text.strip() or text.endswith(("/", os.sep)):
        raise ConfigError(f"path {text!r} must name a file")
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(text)
            if name is not None
        ]
    except ValueError as exc:
        raise ConfigError(f"path {text!r}: {exc} (write '{{{{' for a literal brace)") from None
    for name, spec, conversion in fields:
        if name not in PLACEHOLDERS:
            allowed = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            raise ConfigError(f"path {text!r}: unknown placeholder {{{name}}}; use {allowed}")
        if spec or conversion:
            raise ConfigError(f"path {text!r}: placeholder {{{name}}} takes no format")
    return text


class _Paths:
    """Files being written in this process, so two runs never write one path at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: dict[Path, str] = {}

    def claim(self, path: Path, owner: str) -> str | None:
        """Take ``path`` for ``owner``; the current owner when another run has it."""
        with self._lock:
            holder = self._owners.setdefault(path, owner)
        return None if holder == owner else holder

    def release(self, path: Path, owner: str) -> None:
        """Give ``path`` back (only its owner can)."""
        with self._lock:
            if self._owners.get(path) == owner:
                del self._owners[path]


_WRITING = _Paths()


class FileLoader(Loader):
    """Shared behaviour: resolve the path per run, write a temporary file, rename on success.

    The run's file is confirmed before it counts: its rows are read back from the
    temporary file before the rename (a mismatch fails the run and leaves an older file
    in place), and after the rename the file at the path must be that same file.  Rows
    are counted as loaded only then.
    """

    label: ClassVar[str] = "file"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = _check_template(path)

    def describe(self) -> str:
        """E.g. ``write_parquet(exports/{window_start}.parquet)``."""
        return f"{self.step_name}({self.path})"

    def target_path(self, ctx: RunContext) -> str:
        """The path with the run's placeholders filled in (relative if given relative)."""
        return self.path.format(
            pipeline=ctx.pipeline,
            run_id=ctx.run_id,
            window_start=ctx.window.start.strftime(WINDOW_FORMAT),
            window_end=ctx.window.end.strftime(WINDOW_FORMAT),
        )

    @staticmethod
    def _owner(ctx: RunContext) -> str:
        return f"run {ctx.run_id} ({ctx.node})"

    def open(self, ctx: RunContext) -> None:
        """Pick the target and a temporary file beside it; create missing directories."""
        state = ctx.step_state(self)
        if state.get("file") is not None:
            raise FatalError(f"{self.step_name} is already writing {state['file'].shown}")
        state["confirmed"] = 0
        shown = self.target_path(ctx)
        final = Path.cwd() / Path(shown).expanduser()
        if final.is_dir():
            raise FatalError(f"{self.label} path {shown} is a directory")
        holder = _WRITING.claim(final, self._owner(ctx))
        if holder is not None:
            raise FatalError(
                f"{self.label} path {shown} is being written by {holder}: two runs must not "
                "write one file (put {window_start} or {run_id} in the path)"
            )
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _WRITING.release(final, self._owner(ctx))
            raise FatalError(f"cannot create the directory of {shown}: {exc}") from exc
        temp = final.with_name(f".{final.name}.{secrets.token_hex(6)}.tmp")
        try:
            state["file"] = self.begin(final=final, temp=temp, shown=shown)
        except OSError as exc:
            _WRITING.release(final, self._owner(ctx))
            with suppress(OSError):
                temp.unlink(missing_ok=True)
            raise FatalError(f"cannot write {shown}: {exc}") from exc

    def _file(self, ctx: RunContext) -> FileWriter:
        file: FileWriter | None = ctx.step_state(self).get("file")
        if file is None:
            self.open(ctx)
            file = ctx.step_state(self)["file"]
        return file

    def write(self, batch: pa.RecordBatch, ctx: RunContext) -> None:
        """Append one batch to the run's temporary file."""
        file = self._file(ctx)
        try:
            file.append(batch)
        except OSError as exc:
            raise FatalError(f"cannot write {file.shown}: {exc}") from exc
        file.rows += batch.num_rows

    def rows_written(self, ctx: RunContext) -> int:
        """Rows of the file this run put in place (0 until it is confirmed there)."""
        return int(ctx.step_state(self).get("confirmed", 0))

    def close(self, ctx: RunContext, *, success: bool) -> None:
        """On success confirm the finished file and move it into place; else delete it."""
        file: FileWriter | None = ctx.step_state(self).pop("file", None)
        if file is None:
            return
        try:
            if not success:
                _discard(file)
                ctx.log.info("file discarded", path=file.shown, reason="run failed")
                return
            self._put_in_place(file)
        finally:
            _WRITING.release(file.final, self._owner(ctx))
        ctx.step_state(self)["confirmed"] = file.rows
        size = file.final.stat().st_size
        ctx.log.info("file written", path=file.shown, rows=file.rows, bytes=size)

    def _put_in_place(self, file: FileWriter) -> None:
        """Finish, check what is on disk, rename; the renamed file must be the checked one."""
        try:
            try:
                file.finish()
                fsync(file.temp)
                found = file.rows_in(file.temp)
                written = file.temp.stat()
            except OSError as exc:
                raise FatalError(f"cannot write {file.shown}: {exc}") from exc
            if found != file.rows:
                raise FatalError(
                    f"{self.label} file {file.shown}: {file.rows} rows were written but the "
                    f"finished file holds {found}; it was not put in place"
                )
            try:
                file.temp.replace(file.final)
                placed = file.final.stat()
            except OSError as exc:
                raise FatalError(f"cannot write {file.shown}: {exc}") from exc
        finally:
            _discard(file)
        if (placed.st_dev, placed.st_ino) != (written.st_dev, written.st_ino):
            raise FatalError(
                f"{self.label} file {file.shown} was replaced by another writer right after "
                "this run put its file there; one path takes one writer"
            )

    @abstractmethod
    def begin(self, *, final: Path, temp: Path, shown: str) -> FileWriter:
        """Start writing ``temp`` (to become ``final``); ``shown`` names it in messages."""


def _discard(file: FileWriter) -> None:
    """Drop the writer and the temporary file (gone already after a rename)."""
    with suppress(Exception):
        file.abort()
    with suppress(OSError):
        file.temp.unlink(missing_ok=True)


class JsonLinesLoader(FileLoader):
    """One JSON object per row and line, UTF-8; compressed when the path ends in .gz/.zst/.bz2.

    Timestamps and dates are ISO 8601 text, bytes base64 text, decimals text (no digits
    lost), durations seconds, NaN and infinities null.
    """

    name = "write_jsonl"
    label = "JSONL"

    def begin(self, *, final: Path, temp: Path, shown: str) -> FileWriter:
        """Open the (compressing) output stream."""
        return JsonLinesFile(final=final, temp=temp, shown=shown)


class ParquetLoader(FileLoader):
    """A Parquet file whose schema is the first batch's; later batches are cast to it.

    Each batch becomes (at least) one row group.  A run without rows writes a valid file
    without columns, so re-running an empty window still replaces an older file.
    """

    name = "write_parquet"
    label = "Parquet"

    def __init__(self, path: str | os.PathLike[str], *, compression: str = "zstd") -> None:
        super().__init__(path)
        options = parse_options(ParquetOptions, self.name, compression=compression)
        self.compression = options.compression

    def begin(self, *, final: Path, temp: Path, shown: str) -> FileWriter:
        """The writer starts with the first batch (its schema is the file's)."""
        return ParquetFile(final=final, temp=temp, shown=shown, compression=self.compression)


def write_jsonl(path: str | os.PathLike[str]) -> JsonLinesLoader:
    """Write the run's rows as JSON Lines to ``path`` (placeholders allowed, see module doc).

    ``.gz``, ``.zst`` and ``.bz2`` paths are compressed.
    """
    return JsonLinesLoader(path)


def write_parquet(path: str | os.PathLike[str], *, compression: str = "zstd") -> ParquetLoader:
    """Write the run's rows to one Parquet file at ``path`` (placeholders allowed).

    ``compression`` is one of none, snappy, gzip, brotli, lz4 or zstd (the default).
    """
    return ParquetLoader(path, compression=compression)
