"""``runner metrics``: the warehouse's run history in the Prometheus text format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from runner.cli.shared import ProjectOption, guarded, registry, settings
from runner.errors import ConfigError, ExitCode, printable


@guarded
def metrics(
    textfile: Annotated[
        Path | None,
        typer.Option(
            "--textfile",
            help=(
                "Write to this file (atomically: a temporary file renamed over it, as a "
                "node-exporter textfile collector needs) instead of stdout."
            ),
            show_default=False,
        ),
    ] = None,
    project_dir: ProjectOption = None,
) -> int:
    """Print every pipeline's last run, last success, schedule and table freshness.

    The same metrics a run pushes to RUNNER_PUSHGATEWAY_URL, for the whole warehouse,
    read from the run history (see the README's Metrics section). A pipeline whose file
    does not load is left out and reported on stderr, with exit code 3.
    """
    from prometheus_client import write_to_textfile

    from runner.services.metrics import warehouse_metrics

    current = settings(project_dir)
    found = warehouse_metrics(current, registry(current))
    if textfile is None:
        typer.echo(found.metrics.exposition(), nl=False)
    else:
        try:
            write_to_textfile(str(textfile), found.metrics.registry)
        except OSError as exc:
            raise ConfigError(f"{textfile}: cannot write metrics: {exc.strerror or exc}") from None
    for failure in found.failures:
        typer.echo(f"error: {printable(str(failure.error))}", err=True)
    return int(ExitCode.CONFIG) if found.failures else 0
