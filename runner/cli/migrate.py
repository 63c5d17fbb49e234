"""``runner migrate [status|repair|resolve]``: the project's SQL migrations."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from runner.cli.output import print_table
from runner.cli.shared import Output, OutputOption, ProjectOption, guarded, settings
from runner.errors import ExitCode, UsageError, printable

migrate_app = typer.Typer(
    help="Apply, inspect and repair the SQL migrations in migrations/.",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
)

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
    if ctx.invoked_subcommand is None:
        _apply(to, dry_run, wait_ready, lock_timeout, project_dir)


@guarded
def _apply(
    to: int | None,
    dry_run: bool,
    wait_ready: float,
    lock_timeout: float,
    project_dir: ProjectOption,
) -> None:
    from runner.log import configure_logging
    from runner.services.migrate import migrate as migrate_service

    current = settings(project_dir)
    configure_logging(current)
    report = migrate_service(
        current, to=to, dry_run=dry_run, wait_ready=wait_ready, lock_wait=lock_timeout
    )
    if dry_run:
        if not report.rendered:
            typer.echo("-- nothing to apply")
        for version, statements in report.rendered.items():
            status = next(f for f in report.files if f.version == version)
            typer.echo(f"-- {version:04d}_{status.name}.sql from statement {status.resume_at}")
            for sql in statements:
                typer.echo(f"{sql};")


@migrate_app.command("status")
@guarded
def migrate_status(
    output: OutputOption = Output.TEXT,
    wait_ready: WaitReadyOption = 0.0,
    project_dir: ProjectOption = None,
) -> int:
    """Show each migration file: applied, partial, pending, changed, unresolved or missing.

    Exits 0 at head, 4 when migrations are pending or partial (a readiness check), 3 when an
    applied file was changed or a statement's outcome needs `runner migrate resolve`.
    """
    from runner.migrate.apply import FileState
    from runner.services.migrate import status as status_service

    report = status_service(settings(project_dir), wait_ready=wait_ready)
    if output is Output.JSON:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        typer.echo(f"current {report.current}, head {report.head}")
        print_table(
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
    for problem in (f.problem for f in report.files if f.problem):
        typer.echo(f"error: {printable(problem)}", err=True)
    if any(f.state in {FileState.CHANGED, FileState.UNRESOLVED} for f in report.files):
        return int(ExitCode.CONFIG)
    return 0 if report.at_head else int(ExitCode.NOT_READY)


@migrate_app.command("repair")
@guarded
def migrate_repair(lock_timeout: LockWaitOption = 300.0, project_dir: ProjectOption = None) -> None:
    """Accept edited migration files: record their current checksums as applied.

    Use only when the edit is intended (a comment, formatting, an equivalent statement);
    the changed SQL is not run again.
    """
    from runner.log import configure_logging
    from runner.services.migrate import repair as repair_service

    current = settings(project_dir)
    configure_logging(current)
    repair_service(current, lock_wait=lock_timeout)


@migrate_app.command("resolve")
@guarded
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
        raise UsageError(
            "runner migrate resolve: say --done (it took effect) or --not-done (it did not)"
        )
    from runner.log import configure_logging
    from runner.services.migrate import resolve as resolve_service

    current = settings(project_dir)
    configure_logging(current)
    resolve_service(current, version, statement, done=done, lock_wait=lock_timeout)
