"""What every command shares: common options, settings and registry, and the error guard.

The guard is the one place where a framework error becomes one line on stderr and the
exit code its class documents (see runner.errors), and where a command's returned code
becomes the process's.
"""

from __future__ import annotations

import functools
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, ParamSpec

import typer

from runner.errors import RunnerError, printable

if TYPE_CHECKING:
    from collections.abc import Callable

    from runner.pipeline.discovery import Registry
    from runner.settings import Settings

P = ParamSpec("P")


class Output(StrEnum):
    """Output formats of listing commands."""

    TEXT = "text"
    JSON = "json"


ProjectOption = Annotated[
    Path | None,
    typer.Option(
        "--project-dir",
        "-C",
        help="Project root (holds pipelines/ and migrations/). Env: RUNNER_PROJECT_DIR.",
        show_default=False,
    ),
]
OutputOption = Annotated[Output, typer.Option("--output", "-o", help="text or json.")]
NameArgument = Annotated[str, typer.Argument(help="Pipeline name (file <name>_pipeline.py).")]


def fail(exc: RunnerError) -> NoReturn:
    """Print ``exc`` as one line on stderr and exit with its class's code."""
    typer.echo(f"error: {printable(str(exc))}", err=True)
    raise typer.Exit(int(exc.exit_code))


def guarded(command: Callable[P, int | None]) -> Callable[P, None]:
    """Wrap a command: errors become one line and their exit code.

    A RunnerError is printed by ``fail``; a returned non-zero code becomes the process's
    exit code.  ``functools.wraps`` keeps the signature Typer reads the options from.
    """

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            code = command(*args, **kwargs)
        except RunnerError as exc:
            fail(exc)
        if code:
            raise typer.Exit(code)

    return run


def settings(project_dir: Path | None) -> Settings:
    """Settings from the environment (and ``.env``); ``-C`` overrides the project root."""
    from runner.settings import load_settings

    return load_settings(**({"project_dir": project_dir} if project_dir is not None else {}))


def registry(current: Settings) -> Registry:
    """The project's pipelines (nothing imported until one is loaded)."""
    from runner.pipeline.discovery import Registry

    return Registry(current.pipelines_path)
