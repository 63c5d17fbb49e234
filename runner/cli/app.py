"""The ``runner`` command: one root, its commands in order, and one-line usage errors.

Click prints a usage error as three lines (usage, a hint, the error); ``RunnerGroup``
prints it as one, like every other error, and exits 2.  The exit-code section of
``runner --help`` is built from runner.errors.EXIT_CODES, the table the README is checked
against.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from runner.cli import backfill, deploy, metrics, migrate, operations, pipelines, query
from runner.errors import EXIT_CODES, ExitCode, printable

#: click's UsageError and ClickException (typer re-exports only their subclass BadParameter)
_CLICK_USAGE_ERROR: type[Exception] = typer.BadParameter.__mro__[1]
_CLICK_ERROR: type[Exception] = typer.BadParameter.__mro__[2]
_BACKSPACE = "\b"  # click: a paragraph starting with this line is printed as written


def exit_codes_help() -> str:
    """The exit-code section of ``runner --help``: one code per line."""
    lines = [f"  {int(code):>3}  {doc.short}" for code, doc in EXIT_CODES.items()]
    return "\n".join([_BACKSPACE, "Exit codes:", *lines])


class RunnerGroup(TyperGroup):
    """The root group: usage errors as one line on stderr, exit 2."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command; in standalone mode, exit with its code."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except _CLICK_USAGE_ERROR as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help
                exc.show()  # type: ignore[attr-defined]
                sys.exit(int(ExitCode.USAGE))
            typer.echo(f"error: {_usage_line(exc)}", err=True)
            sys.exit(int(ExitCode.USAGE))
        except _CLICK_ERROR as exc:  # e.g. a file option that cannot be opened
            message = exc.format_message()  # type: ignore[attr-defined]
            typer.echo(f"error: {printable(message)}", err=True)
            sys.exit(int(getattr(exc, "exit_code", ExitCode.USAGE)))
        except typer.Abort:
            typer.echo("error: interrupted", err=True)
            sys.exit(int(ExitCode.INTERRUPTED))
        sys.exit(code if isinstance(code, int) else 0)


def _usage_line(exc: Exception) -> str:
    """``runner backfill run: missing option '--end' (see runner backfill run --help)``."""
    message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
    context = getattr(exc, "ctx", None)
    where = context.command_path if context is not None else "runner"
    return printable(f"{where}: {message} (see `{where} --help`)")


app = typer.Typer(
    name="runner",
    cls=RunnerGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    epilog=exit_codes_help(),
)


def _version_callback(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"runner {version('pipeline-runner')}")
        raise typer.Exit


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Run ETL/ELT pipelines into ClickHouse.

    Settings come from RUNNER_* environment variables (see the README). Every error is
    one line on stderr; the exit code says what kind it was.
    """


app.command("list")(pipelines.list_pipelines)
app.command("show")(pipelines.show)
app.command("run")(pipelines.run)
app.command("status")(operations.status)
app.command("health")(operations.health)
app.command("metrics")(metrics.metrics)
app.command("query")(query.query)
app.command("sql", help="Same as `runner query`.", hidden=False)(query.query)
app.command("render")(deploy.render)
app.command("check")(deploy.check)
app.add_typer(migrate.migrate_app, name="migrate")
app.add_typer(operations.state_app, name="state")
app.add_typer(backfill.backfill_app, name="backfill")


def main() -> None:
    """Console-script entry point; SIGTERM/SIGINT stop any command with exit 130.

    The first signal raises SignalStop wherever the command waits (runner.signals), so
    what it holds is released on the way out; a run turns it into a stop between batches.
    """
    from runner.signals import SignalStop, interrupt_on_signals

    interrupt_on_signals()
    try:
        app()
    except (KeyboardInterrupt, SignalStop) as exc:
        if isinstance(exc, SignalStop):
            from runner.log import get_logger

            get_logger().warning("stopped by a signal; what was held is released", error=str(exc))
        typer.echo(f"error: {printable(str(exc) or 'interrupted')}", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
