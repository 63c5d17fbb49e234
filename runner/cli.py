"""The ``runner`` command: parse options, build settings, call one service, exit with its code.

No logic lives here beyond wiring and printing.  Every framework error becomes one line on
stderr and the exit code its class documents (see runner.errors).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from runner.errors import ConfigError, ExitCode, RunnerError, printable

T = TypeVar("T")

app = typer.Typer(
    name="runner",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


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


def _fail(exc: RunnerError) -> NoReturn:
    typer.echo(f"error: {printable(str(exc))}", err=True)
    raise typer.Exit(int(exc.exit_code))


def _guarded(action: Callable[[], T]) -> T:
    """Run ``action``; turn framework errors into one line and their exit code."""
    try:
        return action()
    except RunnerError as exc:
        _fail(exc)


def _settings(project_dir: Path | None) -> Any:
    from runner.settings import load_settings

    overrides: dict[str, object] = {}
    if project_dir is not None:
        overrides["project_dir"] = project_dir
    return load_settings(**overrides)


def _registry(settings: Any) -> Any:
    from runner.pipeline.discovery import Registry

    return Registry(settings.pipelines_path)


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
    r"""Run ETL/ELT pipelines into ClickHouse.

    Settings come from RUNNER_* environment variables (see the README).

    \b
    Exit codes:
      0 ok                1 run failed        2 usage error
      3 configuration     4 not ready         5 already running
      75 transient failure (a retry may succeed)
      130 interrupted (SIGTERM/SIGINT)
    """


@app.command("list")
def list_pipelines(project_dir: ProjectOption = None, output: OutputOption = Output.TEXT) -> None:
    """List every discovered pipeline: name, kind, schedule, description.

    A module that fails to load is reported on stderr (with its file) and makes the exit
    code 3, but never hides the others.
    """

    def action() -> int:
        settings = _settings(project_dir)
        pipelines, failures = _registry(settings).load_all()
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
            errors = [
                {"name": f.name, "path": str(f.path), "error": str(f.error)} for f in failures
            ]
            typer.echo(json.dumps({"pipelines": rows, "errors": errors}, indent=2))
        else:
            _print_table(rows, ("name", "kind", "schedule", "description"))
        for failure in failures:
            typer.echo(f"error: {printable(str(failure.error))}", err=True)
        return int(ExitCode.CONFIG) if failures else 0

    code = _guarded(action)
    if code:
        raise typer.Exit(code)


def _print_table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    cells = [[str(r.get(c) or "-") for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Pipeline name (file <name>_pipeline.py).")],
    project_dir: ProjectOption = None,
    output: OutputOption = Output.TEXT,
) -> None:
    """Show one pipeline's declaration and steps."""

    def action() -> None:
        settings = _settings(project_dir)
        described = _registry(settings).load(name).describe()
        if output is Output.JSON:
            typer.echo(json.dumps(described, indent=2, default=str))
        else:
            _print_tree(described, 0)

    _guarded(action)


def _print_tree(node: Any, depth: int) -> None:
    pad = "  " * depth
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict | list) and value:
                typer.echo(f"{pad}{key}:")
                _print_tree(value, depth + 1)
            elif value not in (None, [], {}, ""):
                typer.echo(f"{pad}{key}: {value}")
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict):
                typer.echo(f"{pad}-")
                _print_tree(item, depth + 1)
            else:
                typer.echo(f"{pad}- {item}")


def _parse_params(values: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {value!r}: expected KEY=VALUE")
        params[key] = val
    return params


@app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="Pipeline name (file <name>_pipeline.py).")],
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
    """Run one pipeline once, for one window (default: the latest scheduled interval).

    Logs are JSON lines on stdout (a console view on a TTY); the last line summarises
    the run. Only the named pipeline's module is imported.
    """

    def action() -> None:
        from runner.log import configure_logging
        from runner.services.run import run_pipeline

        settings = _settings(project_dir)
        log_file = configure_logging(settings)
        params = _parse_params(param or [])
        run_pipeline(
            settings,
            _registry(settings),
            name,
            start=start,
            end=end,
            dry_run=dry_run,
            params=params,
            log_file=log_file,
        )

    _guarded(action)


migrate_app = typer.Typer(
    help="Apply, inspect and repair the SQL migrations in migrations/.",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
)
app.add_typer(migrate_app, name="migrate")

WaitReadyOption = Annotated[
    float,
    typer.Option(
        "--wait-ready",
        metavar="SECONDS",
        help="Wait up to SECONDS, with backoff, for ClickHouse to answer.",
    ),
]
LockWaitOption = Annotated[
    float,
    typer.Option("--lock-timeout", metavar="SECONDS", help="Wait this long for another migrator."),
]


@migrate_app.callback()
def migrate(
    ctx: typer.Context,
    to: Annotated[
        int | None, typer.Option("--to", metavar="VERSION", help="Apply up to VERSION only.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and the rendered SQL; change nothing.")
    ] = False,
    wait_ready: WaitReadyOption = 0.0,
    lock_timeout: LockWaitOption = 300.0,
    project_dir: ProjectOption = None,
) -> None:
    """Apply pending migrations (create the database if needed), one migrator at a time.

    A failed statement is recorded with the ones before it; after the fix, the next run
    resumes at that statement.
    """
    if ctx.invoked_subcommand is not None:
        return

    def action() -> None:
        from runner.log import configure_logging
        from runner.services.migrate import migrate as migrate_service

        settings = _settings(project_dir)
        configure_logging(settings)
        report = migrate_service(
            settings, to=to, dry_run=dry_run, wait_ready=wait_ready, lock_wait=lock_timeout
        )
        if dry_run:
            if not report.rendered:
                typer.echo("-- nothing to apply")
            for version, statements in report.rendered.items():
                status = next(f for f in report.files if f.version == version)
                typer.echo(f"-- {version:04d}_{status.name}.sql from statement {status.resume_at}")
                for sql in statements:
                    typer.echo(f"{sql};")

    _guarded(action)


@migrate_app.command("status")
def migrate_status(
    output: OutputOption = Output.TEXT,
    wait_ready: WaitReadyOption = 0.0,
    project_dir: ProjectOption = None,
) -> None:
    """Show each migration file: applied, partial, pending, changed, unresolved or missing.

    Exits 0 at head, 4 when migrations are pending or partial (a readiness check), 3 when an
    applied file was changed or a statement's outcome needs `runner migrate resolve`.
    """

    def action() -> int:
        from runner.migrate.apply import FileState
        from runner.services.migrate import status as status_service

        report = status_service(_settings(project_dir), wait_ready=wait_ready)
        if output is Output.JSON:
            typer.echo(json.dumps(report.as_dict(), indent=2))
        else:
            typer.echo(f"current {report.current}, head {report.head}")
            _print_table(
                [
                    {
                        "version": f"{f.version:04d}",
                        "name": f.name,
                        "state": f.state.value,
                        "statements": f"{f.applied_statements}/{f.statements}",
                    }
                    for f in report.files
                ],
                ("version", "name", "state", "statements"),
            )
        problems = [f.problem for f in report.files if f.problem]
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
        if any(f.state in (FileState.CHANGED, FileState.UNRESOLVED) for f in report.files):
            return int(ExitCode.CONFIG)
        return 0 if report.at_head else int(ExitCode.NOT_READY)

    code = _guarded(action)
    if code:
        raise typer.Exit(code)


@migrate_app.command("repair")
def migrate_repair(lock_timeout: LockWaitOption = 300.0, project_dir: ProjectOption = None) -> None:
    """Accept edited migration files: record their current checksums as applied.

    Use only when the edit is intended (a comment, formatting, an equivalent statement);
    the changed SQL is not run again.
    """

    def action() -> None:
        from runner.log import configure_logging
        from runner.services.migrate import repair as repair_service

        settings = _settings(project_dir)
        configure_logging(settings)
        repair_service(settings, lock_wait=lock_timeout)

    _guarded(action)


@migrate_app.command("resolve")
def migrate_resolve(
    version: Annotated[int, typer.Argument(help="The file's version number.")],
    statement: Annotated[int, typer.Argument(help="The statement's number in the file.")],
    done: Annotated[
        bool | None,
        typer.Option(
            "--done/--not-done",
            help="It took effect (skip it), or it did not (run it next time).",
            show_default=False,
        ),
    ] = None,
    lock_timeout: LockWaitOption = 300.0,
    project_dir: ProjectOption = None,
) -> None:
    """Settle a statement whose run was cut off and whose effect cannot be looked up.

    `runner migrate status` names it and says what to check; nothing is run here.
    """
    if done is None:
        typer.echo("error: say --done (it took effect) or --not-done (it did not)", err=True)
        raise typer.Exit(int(ExitCode.USAGE))

    def action() -> None:
        from runner.log import configure_logging
        from runner.services.migrate import resolve as resolve_service

        settings = _settings(project_dir)
        configure_logging(settings)
        resolve_service(settings, version, statement, done=done, lock_wait=lock_timeout)

    _guarded(action)


@app.command("status")
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

    def action() -> None:
        from runner.services.status import recent_runs

        runs = recent_runs(_settings(project_dir), name, limit)
        if output is Output.JSON:
            typer.echo(json.dumps(runs, indent=2, default=str))
            return
        _print_table(
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

    _guarded(action)


@app.command("health")
def health(output: OutputOption = Output.TEXT, project_dir: ProjectOption = None) -> None:
    """Check every pipeline's last run and its declared table freshness.

    Exits 0 when healthy and 1 otherwise, so it can run as a CronJob or a probe.
    """

    def action() -> int:
        from runner.services.status import health as health_service

        settings = _settings(project_dir)
        report = health_service(settings, _registry(settings))
        if output is Output.JSON:
            typer.echo(json.dumps(report.as_dict(), indent=2))
        else:
            _print_table(
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
        return 0 if report.healthy else int(ExitCode.FAILED)

    code = _guarded(action)
    if code:
        raise typer.Exit(code)


state_app = typer.Typer(
    help="Read and change a pipeline's committed state (watermarks, cursors).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(state_app, name="state")
NameArgument = Annotated[str, typer.Argument(help="Pipeline name.")]


@state_app.command("show")
def state_show(name: NameArgument, project_dir: ProjectOption = None) -> None:
    """Print the committed state as JSON."""

    def action() -> None:
        from runner.services.state import show_state

        settings = _settings(project_dir)
        typer.echo(json.dumps(show_state(settings, _registry(settings), name), indent=2))

    _guarded(action)


@state_app.command("set")
def state_set(
    name: NameArgument,
    key: Annotated[str, typer.Argument(help="State key, e.g. cursor or _window_end.")],
    value: Annotated[str, typer.Argument(help="JSON value (a bare word is taken as text).")],
    project_dir: ProjectOption = None,
) -> None:
    """Set one key (takes the pipeline's run lock; exits 5 while a run holds it)."""

    def action() -> None:
        from runner.services.state import change_state, parse_value

        settings = _settings(project_dir)
        new = change_state(
            settings, _registry(settings), name, set_values={key: parse_value(value)}
        )
        typer.echo(json.dumps(new, indent=2))

    _guarded(action)


@state_app.command("reset")
def state_reset(
    name: NameArgument,
    keys: Annotated[list[str] | None, typer.Argument(help="Keys to delete; none: all.")] = None,
    project_dir: ProjectOption = None,
) -> None:
    """Delete keys, or all state: the next incremental run starts from its default window."""

    def action() -> None:
        from runner.services.state import change_state

        settings = _settings(project_dir)
        new = change_state(
            settings, _registry(settings), name, reset_keys=keys or None, reset_all=not keys
        )
        typer.echo(json.dumps(new, indent=2))

    _guarded(action)


@app.command("render")
def render(
    chart: Annotated[
        Path, typer.Option(help="The Helm chart to render into (relative to the project).")
    ] = Path("charts/pipeline-runner"),
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; exit 1 with a diff when the chart is stale."),
    ] = False,
    project_dir: ProjectOption = None,
) -> None:
    """Render one CronJob template per discovered pipeline into the Helm chart.

    Deterministic: re-rendering unchanged pipelines changes nothing. A pipeline whose file
    was deleted loses its generated template.
    """

    def action() -> int:
        from runner.deploy.render import render as render_chart
        from runner.deploy.render import write

        settings = _settings(project_dir)
        result = render_chart(
            _registry(settings), settings.resolve(chart), settings.resolve(Path())
        )
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

    code = _guarded(action)
    if code:
        raise typer.Exit(code)


@app.command("check")
def check(output: OutputOption = Output.TEXT, project_dir: ProjectOption = None) -> None:
    """Check a deployment: warehouse, schema at head, pipelines, and their CronJobs.

    Run by the chart's `helm test` pod. Exits 0 when everything is ready, 4 otherwise.
    """

    def action() -> int:
        from runner.deploy.checks import check_deployment

        settings = _settings(project_dir)
        results = check_deployment(settings, _registry(settings))
        if output is Output.JSON:
            typer.echo(json.dumps([r.__dict__ for r in results], indent=2))
        else:
            _print_table(
                [
                    {"check": r.name, "ok": "ok" if r.ok else "FAIL", "detail": r.detail}
                    for r in results
                ],
                ("check", "ok", "detail"),
            )
        return 0 if all(r.ok for r in results) else int(ExitCode.NOT_READY)

    code = _guarded(action)
    if code:
        raise typer.Exit(code)


backfill_app = typer.Typer(
    help="Reprocess a date range: plan it, run it here, or create an Indexed Job.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(backfill_app, name="backfill")
StartOption = Annotated[
    str, typer.Option("--start", help="Range start, ISO 8601 (UTC if no offset).")
]
EndOption = Annotated[str, typer.Option("--end", help="Range end (exclusive), ISO 8601.")]
StepOption = Annotated[
    str,
    typer.Option("--step", help="'schedule' (the pipeline's own windows) or 15m, 6h, 1d, 1w."),
]
MissingOption = Annotated[
    bool,
    typer.Option(
        "--only-missing/--all", help="Skip windows that already succeeded (default), or redo all."
    ),
]
ReverseOption = Annotated[bool, typer.Option("--reverse", help="Newest window first.")]
YesOption = Annotated[
    bool, typer.Option("--yes", help="Allow more windows than RUNNER_BACKFILL_MAX_WINDOWS.")
]


def _range(start: str, end: str, step: str, only_missing: bool, reverse: bool) -> Any:
    from runner.services.backfill import Range

    return Range(start, end, step, only_missing, reverse)


@backfill_app.command("plan")
def backfill_plan(
    name: NameArgument,
    start: StartOption,
    end: EndOption,
    step: StepOption = "schedule",
    only_missing: MissingOption = True,
    reverse: ReverseOption = False,
    output: OutputOption = Output.TEXT,
    project_dir: ProjectOption = None,
) -> None:
    """Show the windows of a range, how many already succeeded, and what would run."""

    def action() -> None:
        from runner.services.backfill import plan

        settings = _settings(project_dir)
        result = plan(
            settings, _registry(settings), name, _range(start, end, step, only_missing, reverse)
        )
        if output is Output.JSON:
            typer.echo(json.dumps(result.as_dict(), indent=2))
            return
        typer.echo(
            f"{len(result.windows)} windows, {len(result.done)} already succeeded, "
            f"{len(result.todo)} to run"
        )
        for window in result.todo:
            typer.echo(f"  {window.start.isoformat()}  ->  {window.end.isoformat()}")

    _guarded(action)


@backfill_app.command("run")
def backfill_run(
    name: NameArgument,
    start: StartOption,
    end: EndOption,
    step: StepOption = "schedule",
    only_missing: MissingOption = True,
    reverse: ReverseOption = False,
    parallelism: Annotated[int, typer.Option(min=1, max=64, help="Windows at once.")] = 1,
    yes: YesOption = False,
    project_dir: ProjectOption = None,
) -> None:
    """Run the windows of a range on this machine.

    A progress bar on a TTY, JSON progress lines otherwise. Ctrl-C stops between batches;
    running it again resumes with the missing windows. Exits 0, 1 if a window failed, or
    130 when interrupted.
    """

    def action() -> int:
        from runner.log import configure_logging
        from runner.services.backfill import check_size, plan, run_local

        settings = _settings(project_dir)
        configure_logging(settings, stream=sys.stderr if sys.stderr.isatty() else None)
        registry = _registry(settings)
        todo = plan(settings, registry, name, _range(start, end, step, only_missing, reverse)).todo
        check_size(settings, len(todo), confirmed=yes)
        report = _progress(name, len(todo))
        try:
            outcome = run_local(
                settings, registry, name, todo, parallelism=parallelism, on_window=report
            )
        finally:
            report.close()
        typer.echo(
            f"{len(outcome.succeeded)} windows succeeded, {len(outcome.failed)} failed"
            + (", interrupted" if outcome.interrupted else ""),
            err=True,
        )
        if outcome.interrupted:
            return int(ExitCode.INTERRUPTED)
        return int(ExitCode.FAILED) if outcome.failed else 0

    code = _guarded(action)
    if code:
        raise typer.Exit(code)


class _Progress:
    """A tqdm bar on a TTY, one JSON line per finished window otherwise."""

    def __init__(self, name: str, total: int) -> None:
        self.name = name
        self.total = total
        self.finished = 0
        self.bar: Any = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=f"backfill {name}", unit="window")

    def __call__(self, window: Any, status: str, steps: dict[str, Any]) -> None:
        self.finished += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{window.start:%Y-%m-%d %H:%M} {status}")
            return
        rows = sum(int(s.get("rows_loaded", 0)) for s in steps.values())
        line = {
            "event": "backfill window finished",
            "pipeline": self.name,
            "window_start": window.start.isoformat(),
            "window_end": window.end.isoformat(),
            "status": status,
            "rows_loaded": rows,
            "done": self.finished,
            "total": self.total,
        }
        typer.echo(json.dumps(line))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress(name: str, total: int) -> _Progress:
    return _Progress(name, total)


@backfill_app.command("job")
def backfill_job(
    name: NameArgument,
    start: StartOption,
    end: EndOption,
    step: StepOption = "schedule",
    only_missing: MissingOption = True,
    reverse: ReverseOption = False,
    parallelism: Annotated[int, typer.Option(min=1, max=1000, help="Pods at once.")] = 2,
    retries_per_window: Annotated[
        int, typer.Option(min=0, max=20, help="Retries of one window (backoffLimitPerIndex).")
    ] = 2,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Namespace of the CronJob.")
    ] = None,
    from_manifest: Annotated[
        Path | None,
        typer.Option(help="Copy the CronJob from a rendered manifest (helm template) instead."),
    ] = None,
    apply: Annotated[
        bool, typer.Option("--apply", help="Create the Job (default: only print its YAML).")
    ] = False,
    yes: YesOption = False,
    project_dir: ProjectOption = None,
) -> None:
    """Build an Indexed Job with one completion per window, from the pipeline's CronJob.

    Prints the Job's YAML (for `kubectl create -f -`) unless --apply creates it. Windows
    that already succeeded are left out (--all to redo them).
    """

    def action() -> None:
        from runner.deploy.backfill_job import create_job, to_yaml
        from runner.services.backfill import check_size, job_for_range, plan

        settings = _settings(project_dir)
        registry = _registry(settings)
        wanted = _range(start, end, step, only_missing, reverse)
        # From a manifest we are offline: no run history to leave succeeded windows out.
        todo = plan(settings, registry, name, wanted, offline=from_manifest is not None).todo
        check_size(settings, len(todo), confirmed=yes)
        job = job_for_range(
            settings,
            registry,
            name,
            todo,
            namespace=namespace,
            manifest=settings.resolve(from_manifest) if from_manifest else None,
            parallelism=parallelism,
            retries_per_window=retries_per_window,
        )
        if not apply:
            typer.echo(to_yaml(job), nl=False)
            return
        created = create_job(job, namespace=namespace)
        meta = created["metadata"]
        typer.echo(
            f"created Job {meta.get('namespace')}/{meta['name']}: {len(todo)} windows, "
            f"{parallelism} at a time; follow with `runner backfill status {name} "
            f"--start {start} --end {end}`"
        )

    _guarded(action)


@backfill_app.command("index")
def backfill_index(name: NameArgument, project_dir: ProjectOption = None) -> None:
    """Run the window of this pod's JOB_COMPLETION_INDEX (inside a backfill Job)."""

    def action() -> None:
        from runner.deploy.backfill_job import window_for_index
        from runner.log import configure_logging
        from runner.services.run import run_pipeline

        settings = _settings(project_dir)
        window_start, window_end = window_for_index(os.environ)
        log_file = configure_logging(settings)
        run_pipeline(
            settings.model_copy(update={"trigger": "backfill"}),
            _registry(settings),
            name,
            start=window_start,
            end=window_end,
            log_file=log_file,
        )

    _guarded(action)


@backfill_app.command("status")
def backfill_status(
    name: NameArgument,
    start: StartOption,
    end: EndOption,
    step: StepOption = "schedule",
    output: OutputOption = Output.TEXT,
    project_dir: ProjectOption = None,
) -> None:
    """Each window of a range: pending, running, succeeded, failed, cancelled or lost."""

    def action() -> None:
        from collections import Counter

        from runner.services.backfill import window_status

        settings = _settings(project_dir)
        rows = window_status(
            settings, _registry(settings), name, _range(start, end, step, True, False)
        )
        if output is Output.JSON:
            typer.echo(json.dumps(rows, indent=2))
            return
        counts = Counter(r["status"] for r in rows)
        typer.echo(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
        _print_table(
            [
                {
                    "window_start": r["window_start"],
                    "status": r["status"],
                    "rows": r.get("rows_loaded", ""),
                    "error": (r.get("error") or "")[:80],
                }
                for r in rows
            ],
            ("window_start", "status", "rows", "error"),
        )

    _guarded(action)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
