"""``runner list``, ``runner show`` and ``runner run``: the project's pipelines."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from runner.cli.output import print_table, print_tree
from runner.cli.shared import (
    NameArgument,
    Output,
    OutputOption,
    ProjectOption,
    guarded,
    registry,
    settings,
)
from runner.cli.values import params_option, window_option
from runner.errors import ExitCode, printable


@guarded
def list_pipelines(project_dir: ProjectOption = None, output: OutputOption = Output.TEXT) -> int:
    """List every discovered pipeline: name, kind, schedule, description.

    A module that fails to load is reported on stderr (with its file) and makes the exit
    code 3, but never hides the others.
    """
    pipelines, failures = registry(settings(project_dir)).load_all()
    rows = [
        {
            "name": p.name,
            "kind": p.kind,
            "schedule": p.spec.schedule,
            "timezone": p.spec.timezone,
            "description": p.spec.description,
            "owner": p.spec.owner,
            "tags": list(p.spec.tags),
        }
        for p in pipelines
    ]
    if output is Output.JSON:
        errors = [{"name": f.name, "path": str(f.path), "error": str(f.error)} for f in failures]
        typer.echo(json.dumps({"pipelines": rows, "errors": errors}, indent=2))
    else:
        print_table(rows, ("name", "kind", "schedule", "description"))
    for failure in failures:
        typer.echo(f"error: {printable(str(failure.error))}", err=True)
    return int(ExitCode.CONFIG) if failures else 0


@guarded
def show(
    name: NameArgument, project_dir: ProjectOption = None, output: OutputOption = Output.TEXT
) -> None:
    """Show one pipeline's declaration and steps."""
    described = registry(settings(project_dir)).load(name).describe()
    if output is Output.JSON:
        typer.echo(json.dumps(described, indent=2, default=str))
    else:
        print_tree(described)


@guarded
def run(
    name: NameArgument,
    start: Annotated[
        str | None,
        typer.Option(help="Window start, ISO 8601 (UTC if no offset). Needs --end."),
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Window end (exclusive), ISO 8601. Needs --start.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Resolve the pipeline and window; touch no data.")
    ] = False,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="KEY=VALUE visible to steps as ctx.params; repeatable."),
    ] = None,
    project_dir: ProjectOption = None,
) -> None:
    """Run one pipeline once, for one window (default: its scheduled interval).

    The default window ends at the Job's scheduled time, else at the schedule's latest
    fire time. A scheduled run (RUNNER_TRIGGER=schedule) first catches up earlier windows that never
    succeeded (the pipeline's catchup option). Logs are JSON lines on stdout (a console
    view on a TTY); the last line summarises the run. Only the named pipeline's module is
    imported.
    """
    from runner.log import configure_logging
    from runner.services.catchup import run_scheduled
    from runner.services.run import run_pipeline

    window = window_option(start, end)  # usage errors first: nothing loaded or connected
    params = params_option(param or [])
    current = settings(project_dir)
    log_file = configure_logging(current)
    if window is None:
        run_scheduled(
            current, registry(current), name, params=params, dry_run=dry_run, log_file=log_file
        )
        return
    run_pipeline(
        current,
        registry(current),
        name,
        window=window,
        dry_run=dry_run,
        params=params,
        log_file=log_file,
    )
