"""Finding pipeline modules and loading them, one at a time.

The file name is the index: pipeline ``orders`` lives in ``orders_pipeline.py`` (anywhere
under the pipelines directory), so running one pipeline imports exactly one module, however
many the project has.  The module exposes its pipeline as a module-level ``pipeline``.

The registry is an ordinary object created by the caller: nothing is registered by
importing anything.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from runner.errors import PipelineDefinitionError, PipelineNotFoundError, RunnerError
from runner.pipeline.kinds import Pipeline
from runner.signals import SignalStop

SUFFIX = "_pipeline.py"
ATTRIBUTE = "pipeline"
_MODULE_PREFIX = "runner_project_pipelines."
_SKIP_DIRS = frozenset({"__pycache__", ".git", ".venv", "node_modules"})
_import_lock = threading.Lock()


@dataclass(frozen=True)
class LoadFailure:
    """A module that could not be loaded, for listings that must go on."""

    name: str
    path: Path
    error: RunnerError


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class Registry:
    """The pipelines of one project directory, loaded lazily and cached."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._paths: dict[str, Path] | None = None
        self._loaded: dict[str, Pipeline] = {}

    def paths(self) -> dict[str, Path]:
        """Map of pipeline name to module path, by file name only (nothing imported)."""
        if self._paths is not None:
            return self._paths
        if not self.directory.is_dir():
            raise PipelineDefinitionError(
                f"pipelines directory {_relative(self.directory)} does not exist"
            )
        found: dict[str, Path] = {}
        for path in sorted(self._candidates(self.directory)):
            name = path.name.removesuffix(SUFFIX)
            if name in found:
                raise PipelineDefinitionError(
                    f"duplicate pipeline name {name!r}: "
                    f"{_relative(found[name])} and {_relative(path)}"
                )
            found[name] = path
        self._paths = found
        return found

    @staticmethod
    def _candidates(directory: Path) -> list[Path]:
        out: list[Path] = []
        for entry in directory.iterdir():
            if entry.is_dir() and entry.name not in _SKIP_DIRS and not entry.name.startswith("."):
                out.extend(Registry._candidates(entry))
            elif entry.is_file() and entry.name.endswith(SUFFIX) and entry.name != SUFFIX:
                out.append(entry)
        return out

    def names(self) -> list[str]:
        """Sorted names of every discovered pipeline."""
        return sorted(self.paths())

    def load(self, name: str) -> Pipeline:
        """Import only ``<name>_pipeline.py`` and return its pipeline."""
        if name in self._loaded:
            return self._loaded[name]
        paths = self.paths()
        if name not in paths:
            hint = _closest(name, paths)
            raise PipelineNotFoundError(
                f"no pipeline {name!r}: expected {_relative(self.directory / (name + SUFFIX))}"
                + (f" (did you mean {hint!r}?)" if hint else "")
            )
        pipeline = self._import(name, paths[name])
        self._loaded[name] = pipeline
        return pipeline

    def load_all(self) -> tuple[list[Pipeline], list[LoadFailure]]:
        """Load every pipeline; a broken module is reported, never hides the others."""
        pipelines: list[Pipeline] = []
        failures: list[LoadFailure] = []
        for name, path in self.paths().items():
            try:
                pipelines.append(self.load(name))
            except RunnerError as exc:
                failures.append(LoadFailure(name, path, exc))
        return pipelines, failures

    def _import(self, name: str, path: Path) -> Pipeline:
        module = _import_file(name, path, self.directory)
        pipeline = getattr(module, ATTRIBUTE, None)
        if pipeline is None:
            raise PipelineDefinitionError(
                f"{_relative(path)}: defines no pipeline; assign one to a module-level "
                f"`{ATTRIBUTE}` (e.g. pipeline = el({name!r}, extract=..., load=...))"
            )
        if not isinstance(pipeline, Pipeline):
            raise PipelineDefinitionError(
                f"{_relative(path)}: `{ATTRIBUTE}` is a {type(pipeline).__name__}, not a pipeline"
            )
        if pipeline.name != name:
            raise PipelineDefinitionError(
                f"{_relative(path)}: declares pipeline {pipeline.name!r}, but the file name "
                f"says {name!r}; rename one so they match"
            )
        return pipeline


def _import_file(name: str, path: Path, directory: Path) -> ModuleType:
    """Import one file as a fresh module; the pipelines directory is importable for helpers."""
    module_name = _MODULE_PREFIX + name
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - only for non-.py paths
        raise PipelineDefinitionError(f"{_relative(path)}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    with _import_lock:
        if str(directory) not in sys.path:
            sys.path.insert(0, str(directory))
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except RunnerError as exc:
            sys.modules.pop(module_name, None)
            raise PipelineDefinitionError(
                f"{_relative(path)}:{_error_line(exc, path)} {exc}{_origin(exc, path, directory)}"
            ) from None
        except SignalStop:  # SIGTERM while importing: stop (exit 130), not a broken module
            sys.modules.pop(module_name, None)
            raise
        except BaseException as exc:  # noqa: BLE001 - a module may raise anything, even SystemExit
            sys.modules.pop(module_name, None)
            raise PipelineDefinitionError(
                f"{_relative(path)}:{_error_line(exc, path)} import failed: "
                f"{type(exc).__name__}: {exc}{_origin(exc, path, directory)}"
            ) from None
    return module


def _error_line(exc: BaseException, path: Path) -> str:
    """The line of ``path`` where the import failed, as ``N:``, when known."""
    if isinstance(exc, SyntaxError) and exc.lineno and _same(exc.filename, path):
        return f"{exc.lineno}:"
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if _same(frame.filename, path) and frame.lineno:
            return f"{frame.lineno}:"
    return ""


def _origin(exc: BaseException, path: Path, directory: Path) -> str:
    """`` (in helper.py:N)`` when the error arose in a project module the pipeline imported.

    The innermost frame under the pipelines directory that is not the pipeline file
    itself (for a syntax error: the file that does not parse).
    """
    places: list[tuple[str | None, int | None]] = [
        (frame.filename, frame.lineno) for frame in traceback.extract_tb(exc.__traceback__)
    ]
    if isinstance(exc, SyntaxError):
        places.append((exc.filename, exc.lineno))
    for filename, line in reversed(places):
        if filename is None or not _inside(filename, directory):
            continue
        if _same(filename, path):
            return ""
        return f" (in {_relative(Path(filename))}{f':{line}' if line else ''})"
    return ""


def _same(filename: str | None, path: Path) -> bool:
    return filename is not None and Path(filename) == path


def _inside(filename: str, directory: Path) -> bool:
    try:
        Path(filename).resolve().relative_to(directory.resolve())
    except (ValueError, OSError):
        return False
    return True


def _closest(name: str, paths: dict[str, Path]) -> str | None:
    import difflib

    matches = difflib.get_close_matches(name, list(paths), n=1)
    return matches[0] if matches else None
