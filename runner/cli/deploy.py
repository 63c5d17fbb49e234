"""``runner render`` and ``runner check``: the Helm chart and a deployment's readiness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from runner.cli.output import print_table
from runner.cli.shared import Output, OutputOption, ProjectOption, guarded, registry, settings
from runner.errors import ExitCode


@guarded
def render(
    chart: Annotated[
        Path, typer.Option(help="The Helm chart to render into (relative to the project).")
    ] = Path("charts/pipeline-runner"),
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; exit 1 with a diff when the chart is stale."),
    ] = False,
    project_dir: ProjectOption = None,
) -> int:
    """Render one CronJob template per discovered pipeline into the Helm chart.

    Deterministic: re-rendering unchanged pipelines changes nothing. A pipeline whose file
    was deleted loses its generated template.
    """
    from runner.deploy.render import render as render_chart
    from runner.deploy.render import write

    current = settings(project_dir)
    result = render_chart(registry(current), current.resolve(chart), current.resolve(Path()))
    if check:
        diff = result.diff()
        if diff:
            typer.echo(diff)
            typer.echo("error: the chart is stale: run `runner render`", err=True)
            return int(ExitCode.FAILED)
        typer.echo(f"chart up to date: {len(result.files)} pipelines")
        return 0
    changed = write(result)
    for path in changed:
        typer.echo(f"{'deleted' if path in result.stale else 'wrote'} {path}")
    typer.echo(f"{len(result.files)} pipelines rendered, {len(changed)} files changed")
    return 0


@guarded
def check(output: OutputOption = Output.TEXT, project_dir: ProjectOption = None) -> int:
    """Check a deployment: warehouse, schema at head, pipelines, and their CronJobs.

    Run by the chart's `helm test` pod. Exits 0 when everything is ready, 4 otherwise.
    """
    from runner.deploy.checks import check_deployment

    current = settings(project_dir)
    results = check_deployment(current, registry(current))
    if output is Output.JSON:
        typer.echo(json.dumps([r.__dict__ for r in results], indent=2))
    else:
        print_table(
            [
                {"check": r.name, "ok": "ok" if r.ok else "FAIL", "detail": r.detail}
                for r in results
            ],
            ("check", "ok", "detail"),
        )
    return 0 if all(r.ok for r in results) else int(ExitCode.NOT_READY)
