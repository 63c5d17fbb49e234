"""``runner status``, ``runner health`` and ``runner state``: what ran, and what it left."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from runner.cli.output import print_table
from runner.cli.shared import (
    NameArgument,
    Output,
    OutputOption,
    ProjectOption,
    guarded,
    registry,
    settings,
)
from runner.errors import ExitCode


@guarded
def status(
    name: Annotated[str | None, typer.Argument(help="Only this pipeline.")] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1000, help="How many runs.")
    ] = 20,
    output: OutputOption = Output.TEXT,
    project_dir: ProjectOption = None,
) -> None:
    """Show recent runs: status, window, duration, rows and errors (newest first).

    A run still marked running whose heartbeat stopped is shown as lost.
    """
    from runner.services.status import recent_runs

    runs = recent_runs(settings(project_dir), name, limit)
    if output is Output.JSON:
        typer.echo(json.dumps(runs, indent=2, default=str))
        return
    print_table(
        [
            {
                "pipeline": r["pipeline"],
                "run_id": r["run_id"],
                "status": r["status"],
                "trigger": r["trigger"],
                "window": f"{r['window_start'][:16]}..{r['window_end'][:16]}",
                "seconds": (
                    f"{r['duration_seconds']:.1f}" if r["duration_seconds"] is not None else ""
                ),
                "rows": f"{r['rows_loaded']}/{r['rows_extracted']}",
                "error": r["error_message"][:80],
            }
            for r in runs
        ],
        ("pipeline", "run_id", "status", "trigger", "window", "seconds", "rows", "error"),
    )


@guarded
def health(output: OutputOption = Output.TEXT, project_dir: ProjectOption = None) -> int:
    """Check every pipeline's last run, rows per window and tables, and declared freshness.

    Exits 0 when healthy and 1 otherwise, so it can run as a CronJob or a probe.
    """
    from runner.services.status import health as health_service

    current = settings(project_dir)
    report = health_service(current, registry(current))
    if output is Output.JSON:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        print_table(
            [
                {
                    "pipeline": c.pipeline,
                    "check": c.check,
                    "ok": "ok" if c.healthy else "FAIL",
                    "detail": c.detail,
                }
                for c in report.checks
            ],
            ("pipeline", "check", "ok", "detail"),
        )
        if report.tables:
            typer.echo("")
            print_table(
                [t.as_dict() for t in report.tables],
                ("pipeline", "table", "rows", "time_column", "latest", "last_written", "error"),
            )
    return 0 if report.healthy else int(ExitCode.FAILED)


state_app = typer.Typer(
    help="Read and change a pipeline's committed state (watermarks, cursors).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@state_app.command("show")
@guarded
def state_show(name: NameArgument, project_dir: ProjectOption = None) -> None:
    """Print the committed state as JSON."""
    from runner.services.state import show_state

    current = settings(project_dir)
    typer.echo(json.dumps(show_state(current, registry(current), name), indent=2))


@state_app.command("set")
@guarded
def state_set(
    name: NameArgument,
    key: Annotated[str, typer.Argument(help="State key, e.g. cursor or _window_end.")],
    value: Annotated[str, typer.Argument(help="JSON value (a bare word is taken as text).")],
    project_dir: ProjectOption = None,
) -> None:
    """Set one key (takes the pipeline's run lock; exits 5 while a run holds it)."""
    from runner.services.state import change_state, parse_value

    current = settings(project_dir)
    new = change_state(current, registry(current), name, set_values={key: parse_value(value)})
    typer.echo(json.dumps(new, indent=2))


@state_app.command("reset")
@guarded
def state_reset(
    name: NameArgument,
    keys: Annotated[list[str] | None, typer.Argument(help="Keys to delete; none: all.")] = None,
    project_dir: ProjectOption = None,
) -> None:
    """Delete keys, or all state: the next incremental run starts from its default window."""
    from runner.services.state import change_state

    current = settings(project_dir)
    new = change_state(
        current, registry(current), name, reset_keys=keys or None, reset_all=not keys
    )
    typer.echo(json.dumps(new, indent=2))
